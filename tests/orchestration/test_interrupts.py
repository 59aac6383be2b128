"""Ctrl-C during a run is told from a failed step, and the run's helpers write to the event log.

A real in-process Dagster run whose op receives SIGINT, as a terminal's Ctrl-C delivers it to the CLI:
Dagster fails the run, and :func:`was_interrupted` must say it was interrupted (the pipeline then stops
with exit 130 instead of reporting a failed step). A step that fails with an error is not an interrupt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from hybridops.orchestration.interrupts import stderr_to, was_interrupted


@dg.op
def interrupted() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # Dagster raises its interruption at the next check, long before this ends


@dg.op
def broken() -> None:
    raise ValueError("a data error")


@pytest.mark.parametrize(("op", "expected"), [(interrupted, True), (broken, False)])
def test_an_interrupted_run_is_told_from_a_failed_one(op, expected):
    job = dg.GraphDefinition(name=f"job_{op.name}", node_defs=[op]).to_job()
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    assert was_interrupted(result) is expected
    assert time.perf_counter() - started < 5


def test_children_started_meanwhile_write_their_errors_to_the_log(tmp_path: Path):
    log_path = tmp_path / "run.log"
    with log_path.open("a", encoding="utf-8") as log, stderr_to(log):
        print("from python", file=sys.stderr)
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('from a child\\n')"], check=True)
    text = log_path.read_text()
    assert "from python" in text and "from a child" in text
