"""Child processes the platform starts (Prometheus under ``hybridops monitor``) and stops again."""

from __future__ import annotations

import subprocess


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
