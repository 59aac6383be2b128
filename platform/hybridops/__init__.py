"""hybridops: DataOps and MLOps as one system.

Importing the package changes no other library's behaviour: no import hooks, no patched attributes, no
process-wide warning filters. Feast (about 4 s to import) is imported only by the functions that use it.
"""

__version__ = "0.1.0"
