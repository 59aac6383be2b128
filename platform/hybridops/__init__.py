"""hybridops: DataOps and MLOps as one system.

Importing the package changes no other library's behaviour: no import hooks, no patched attributes, no
process-wide warning filters. Feast (about 4 s to import) is imported only by the functions that use it.
"""

import os

__version__ = "0.1.0"

# LightGBM's OpenMP threads spin while they wait for each other. On a laptop or a pod whose cores are
# shared (the webserver, a test run, the inference service), a spinning thread steals the core its peer
# needs and training ran five times slower with two threads than with one; passive waiting removes that.
# It must be set before the OpenMP runtime loads (the first `import lightgbm`); an explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
