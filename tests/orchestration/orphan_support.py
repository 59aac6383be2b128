"""Processes for test_orphans.py: a run worker started by multiprocessing and the step process it starts
(importable by name in spawned processes; nothing heavy imported)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path


def step(folder: str, watched: bool) -> None:
    from hybridops.orchestration.orphans import die_with_run_worker

    if watched:
        (Path(folder) / "watched").write_text(str(die_with_run_worker()))
    (Path(folder) / "step.pid").write_text(str(os.getpid()))
    time.sleep(20)  # a step still writing when its run worker is killed
    (Path(folder) / "finished").write_text("an orphan finished its step")


def run_worker(folder: str, watched: bool) -> None:
    child = multiprocessing.get_context("spawn").Process(target=step, args=(folder, watched))
    child.start()
    child.join()
