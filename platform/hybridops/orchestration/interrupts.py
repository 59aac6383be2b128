"""Ctrl-C during ``hybridops run``: the pipeline stops as interrupted, not as a failed step, and quietly.

A terminal's Ctrl-C is a SIGINT to the whole foreground process group. Dagster catches it in the CLI's own
process while a run executes and fails the run (``DagsterExecutionInterruptedError``): without a look at
why, the pipeline reported a failed step with its summary and exit 1. The helper processes Dagster starts
(the compute-log watcher) get the same signal and printed their own ``KeyboardInterrupt`` tracebacks on
the terminal. :func:`was_interrupted` tells an interrupted run from a failed one, and :func:`stderr_to`
sends the standard error of the run's process and its children to the run's event log.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

_INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def was_interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a step or the run itself failed because of an interrupt (SIGINT) rather than an error."""
    for event in result.all_events:
        error = None
        if event.is_step_failure:
            error = event.step_failure_data.error
        elif event.is_run_failure:
            error = event.job_failure_data.error
        while error is not None:
            if error.cls_name in _INTERRUPTS:
                return True
            error = error.cause
    return False


@contextlib.contextmanager
def stderr_to(log: IO[str]) -> Iterator[None]:
    """Python's ``sys.stderr`` and file descriptor 2 (inherited by the processes started meanwhile) go to
    ``log`` for the duration; both are restored after."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        log.flush()
        os.dup2(log.fileno(), 2)
        with contextlib.redirect_stderr(log):
            yield
    finally:
        log.flush()
        os.dup2(saved, 2)
        os.close(saved)
