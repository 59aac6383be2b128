"""The platform's own processes: how they run, and the children they start and stop again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings


def wait_passively() -> None:
    """Let OpenMP threads (LightGBM's) wait passively in this process and its children, unless told otherwise.

    OpenMP threads spin while they wait for each other. On a laptop or a pod whose cores are shared (the
    webserver, a test run, the inference service), a spinning thread steals the core its peer needs: training
    ran five times slower with two threads than with one. The OpenMP runtime reads the variable when it loads
    (the first ``import lightgbm``), so the platform's entry points call this first: the CLI and the code
    location's package. ``import hybridops`` itself sets nothing; an explicit value wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_QUIET = (DeprecationWarning, FutureWarning)


def quiet_library_warnings() -> None:
    """Libraries' deprecation and future warnings off in this process (an entry point's choice, never made at
    import): they are for their maintainers, not for people running the platform. An explicit ``-W`` or
    ``PYTHONWARNINGS`` still wins.

    A filter alone does not hold: Feast puts ``warnings.simplefilter("once", DeprecationWarning)`` in front
    of every filter when it is imported, often lazily in the middle of a command (the exporter's first
    scrape), and SQLAlchemy's deprecation warnings from MLflow's store then reached the terminal. So
    ``warnings.showwarning``, the hook the warnings module documents as replaceable, also drops them.
    """
    if sys.warnoptions:
        return
    for category in _QUIET:
        warnings.filterwarnings("ignore", category=category)
    shown = warnings.showwarning
    if getattr(shown, "hybridops_quiet", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if not issubclass(category, _QUIET):
            shown(message, category, filename, lineno, file, line)

    showwarning.hybridops_quiet = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def default_signals() -> None:
    """``preexec_fn`` for a child that must answer SIGINT and SIGTERM as a freshly started process does.

    A child inherits the blocked signals of the thread that starts it and the ignored dispositions of its
    parent: a parent running other libraries in-process (a test runner, a notebook) may have SIGINT or
    SIGTERM blocked or ignored at that moment, and the child would then never stop on them.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Ask ``process`` to stop (SIGTERM); kill it if it has not exited after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
