"""hybridops: DataOps and MLOps as one system."""

import os

from hybridops import deferred_typechecks

__version__ = "0.1.0"

# LightGBM's OpenMP threads spin while they wait for each other. On a laptop or a pod whose cores are
# shared (the webserver, a test run, the inference service), a spinning thread steals the core its peer
# needs and training ran five times slower with two threads than with one; passive waiting removes that.
# It must be set before the OpenMP runtime loads (the first `import lightgbm`); an explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Feast's typeguard checks instrumented on first call, not during `import feast` (~3.7 s a process).
deferred_typechecks.install()
