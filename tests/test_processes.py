"""Stopping a child process: SIGTERM first, SIGKILL when it does not go."""

from __future__ import annotations

import signal
import subprocess
import sys

from hybridops.processes import stop


def _child(code: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"up\n"
    return process


def test_a_process_that_honours_sigterm_stops_with_it() -> None:
    process = _child("import sys, time; print('up', flush=True); time.sleep(60)")
    stop(process)
    assert process.returncode == -signal.SIGTERM


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    process = _child(code)
    stop(process, timeout=0.5)
    assert process.returncode == -signal.SIGKILL


def test_an_exited_process_is_left_alone() -> None:
    process = _child("print('up', flush=True)")
    process.wait()
    stop(process)
    assert process.returncode == 0
