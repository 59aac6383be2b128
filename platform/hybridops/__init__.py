"""hybridops: DataOps and MLOps as one system."""

__version__ = "0.1.0"
