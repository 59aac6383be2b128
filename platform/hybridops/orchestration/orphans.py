"""A step process dies with the run worker that started it.

Dagster's multiprocess executor runs each step in a process the run worker spawns; the step process
writes its own events and outputs. When the run worker is killed (SIGKILL, out of memory), its step
processes live on as orphans: they finish their step and record a materialization of a run that is
already failed, while the run's retry runs the same step again. The partition is then written twice (what
tests/orchestration/test_run_worker_killed.py found with the multiprocess executor). So a step process
watches its parent and kills itself as soon as the parent is gone: its step then counts as not done, and
the retry runs it once. What it leaves half-written is safe to leave: warehouse writes are transactions,
files are staged and renamed (:mod:`hybridops.files`).

Only a step process is watched: a process whose parent is itself a process started by Python's
``multiprocessing`` (the run worker), not the run worker, whose parent is the code server and which
must finish its run even if the code server goes away.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

POLL_SECONDS = 0.1
_SPAWNED = (b"multiprocessing.spawn", b"multiprocessing.forkserver")
_watching: int | None = None
_lock = threading.Lock()


def _spawned_by_multiprocessing(pid: int) -> bool:
    try:
        return any(marker in Path(f"/proc/{pid}/cmdline").read_bytes() for marker in _SPAWNED)
    except OSError:  # no /proc (not Linux) or the process is gone: nothing to watch
        return False


def _watch(parent: int) -> None:
    while True:
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent:  # reparented: the run worker is gone
            os.kill(os.getpid(), signal.SIGKILL)


def die_with_run_worker() -> bool:
    """In a step process of a run worker, start (once) the watch that kills it when the worker dies.

    Returns whether this process is watched.
    """
    global _watching
    with _lock:
        if _watching == os.getpid():
            return True
        parent = os.getppid()
        if not _spawned_by_multiprocessing(parent):
            return False
        threading.Thread(
            target=_watch, args=(parent,), name="hybridops-run-worker-watch", daemon=True
        ).start()
        _watching = os.getpid()
        return True
