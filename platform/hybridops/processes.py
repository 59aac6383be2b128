"""Child processes the platform starts (Prometheus under ``hybridops monitor``) and stops again."""

from __future__ import annotations

import signal
import subprocess


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
