"""Run several long-lived children as one command (``hybridops ui``: the Dagster webserver and daemon).

Each child gets its own process group, so what it starts itself (Dagster's gRPC code servers) is stopped
with it. The first of SIGINT (Ctrl-C), SIGTERM or a child's exit stops every child: SIGTERM to each group,
then SIGKILL to what is left after a grace period. Nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hybridops.processes import default_signals

GRACE_SECONDS = 15.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Child:
    name: str
    command: Sequence[str]
    env: Mapping[str, str]


def _start(child: Child) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(child.command),
        env={**os.environ, **child.env},
        start_new_session=True,  # its own process group: its code server stops with it
        preexec_fn=default_signals,
    )


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop_all(processes: Sequence[subprocess.Popen[bytes]], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every child's group, wait up to ``grace`` seconds, then SIGKILL the groups."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
    for process in processes:
        # The leader may be gone while a grandchild (a code server) still runs in its group.
        _signal_group(process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


class _Stop(Exception):
    pass


def supervise(children: Sequence[Child], echo=print) -> int:
    """Start ``children`` and wait; returns 0 when stopped by a signal, else the first exit code seen."""
    started: list[subprocess.Popen[bytes]] = []

    def on_signal(signum: int, frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        for child in children:
            started.append(_start(child))
        while True:
            for child, process in zip(children, started, strict=True):
                if process.poll() is not None:
                    echo(
                        f"hybridops: {child.name} exited with code {process.returncode}; stopping the others"
                    )
                    code = process.returncode or 1
                    raise _Stop(child.name)
            time.sleep(POLL_SECONDS)
    except _Stop:
        pass
    finally:
        # A second Ctrl-C during the shutdown must not leave children behind.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            stop_all(started)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return code
