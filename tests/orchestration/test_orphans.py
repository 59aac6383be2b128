"""A step process dies with its run worker (hybridops.orchestration.orphans).

A run worker started by ``multiprocessing`` (as Dagster's code server starts one) starts a step process (as
the multiprocess executor does); the worker is SIGKILLed while the step is still at work. The watched step
process is gone within a second and never finishes; without the watch it would have finished as an
orphan. A process whose parent is not a multiprocessing worker (the run worker itself, ``hybridops run``)
is not watched.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import orphan_support

from hybridops.orchestration.orphans import die_with_run_worker


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _kill_worker_mid_step(folder: Path, watched: bool) -> tuple[int, float | None]:
    worker = multiprocessing.get_context("spawn").Process(
        target=orphan_support.run_worker, args=(str(folder), watched)
    )
    worker.start()
    deadline = time.monotonic() + 120
    while not (folder / "step.pid").exists():
        assert time.monotonic() < deadline, "the step process did not start"
        time.sleep(0.05)
    step = int((folder / "step.pid").read_text())
    os.kill(worker.pid, signal.SIGKILL)  # type: ignore[arg-type]
    worker.join(10)
    killed = time.monotonic()
    while _alive(step) and time.monotonic() - killed < 5:
        time.sleep(0.02)
    gone = time.monotonic() - killed if not _alive(step) else None
    return step, gone


def test_a_step_process_dies_with_its_run_worker(tmp_path: Path) -> None:
    step, gone = _kill_worker_mid_step(tmp_path, watched=True)
    assert (tmp_path / "watched").read_text() == "True"
    assert gone is not None and gone < 1.0, f"step process {step} outlived its run worker"
    assert not (tmp_path / "finished").exists()
    print(f"\nstep process gone {gone * 1000:.0f} ms after its run worker")


def test_without_the_watch_the_step_lives_on_as_an_orphan(tmp_path: Path) -> None:
    step, gone = _kill_worker_mid_step(tmp_path, watched=False)
    try:
        assert gone is None, "the unwatched step process died with its worker: the test proves nothing"
    finally:
        if _alive(step):
            os.kill(step, signal.SIGKILL)


def test_a_process_not_started_by_a_run_worker_is_not_watched() -> None:
    assert die_with_run_worker() is False
