"""Stopping a child process: SIGTERM first, SIGKILL when it does not go; an entry point's quiet warnings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

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


# What Feast does when imported (after the entry point set its filters), then warnings as libraries raise them.
_WARNINGS = """
import warnings
from hybridops.processes import quiet_library_warnings
quiet_library_warnings()
quiet_library_warnings()  # twice (an entry point and a command): still one hook
warnings.simplefilter("once", DeprecationWarning)
warnings.warn("old api", DeprecationWarning)
warnings.warn("future api", FutureWarning)
warnings.warn("the data looks odd", UserWarning)
"""


@pytest.mark.parametrize(
    ("options", "shown"),
    [([], ["the data looks odd"]), (["-W", "default"], ["old api", "future api", "the data looks odd"])],
)
def test_library_deprecations_stay_quiet_even_after_feast_turns_them_on(options, shown) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    result = subprocess.run(
        [sys.executable, *options, "-c", _WARNINGS], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    messages = [line.split("Warning: ", 1)[1] for line in result.stderr.splitlines() if "Warning: " in line]
    assert messages == shown, result.stderr
