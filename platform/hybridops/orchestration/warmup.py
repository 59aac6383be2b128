"""Import the ML half's libraries on a second thread while the data half of a run works.

LightGBM, scikit-learn, SciPy and MLflow take about 2.5 s of one core to import. The code location imports
them only in the steps that use them (its definitions load without them), and ``hybridops run`` starts
this import when it begins: the data steps spend much of their time in DuckDB, Arrow and file I/O, which
release the interpreter, so the imports use the machine's other core instead of delaying the first
training step. The data half never imports these libraries, so the two threads do not import the same
modules at once.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence

# What the training, scoring and monitoring steps import (and, through them, the libraries).
ML_MODULES = (
    "hybridops.training.train",
    "hybridops.training.tracking",
    "hybridops.registry",
    "hybridops.inference.batch",
    "hybridops.monitoring.drift",
    "hybridops.monitoring.performance",
)


def start_warmup(modules: Sequence[str] = ML_MODULES) -> threading.Thread:
    """Start importing ``modules`` on a thread; join it before the process ends."""
    thread = threading.Thread(target=_import_all, args=(tuple(modules),), name="hybridops-ml-imports")
    thread.start()
    return thread


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the step that needs the module imports it again and reports the error
            return
