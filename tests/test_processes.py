"""Stopping a child process: SIGTERM first, SIGKILL when it does not go."""

from __future__ import annotations

import signal
import subprocess
import sys

from hybridops.processes import default_signals, stop


def _child(code: str) -> subprocess.Popen[bytes]:
    # The test runner's own signal state (other tests run libraries in this process) is not the child's.
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, preexec_fn=default_signals
    )
    assert process.stdout is not None and process.stdout.readline() == b"up\n"
    return process


def test_a_child_answers_sigterm_even_when_its_parent_blocks_it() -> None:
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        process = _child("import sys, time; print('up', flush=True); time.sleep(60)")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    stop(process, timeout=5)
    assert process.returncode == -signal.SIGTERM


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
