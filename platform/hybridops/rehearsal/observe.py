"""What the rehearsal's processes really did, sampled from the process table while they run.

Run workers are the processes the user-code server starts for runs (Dagster spawns each one with
multiprocessing under ``DefaultRunLauncher``); connections are the established TCP connections of every
process of every pod, mapped from their loopback server port back to the Service it stands for.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import psutil

from hybridops.rehearsal.topology import Cluster

RUN_POD = "dagster-run"  # the run pod's component, as hybridops.deploy.release_pods names it


@dataclass(frozen=True, order=True)
class Connection:
    """A connection a pod opened: the client pod, the Service it reached, and the Service's port."""

    client: str
    service: str
    port: int


def _is_run_worker(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # a run worker that finished, not yet reaped by the server
        command = " ".join(process.cmdline())
        return "multiprocessing.spawn" in command and "resource_tracker" not in command
    return False


@dataclass
class Sampler:
    """Samples the process table every ``interval`` seconds in a thread until stopped."""

    cluster: Cluster
    interval: float = 1.0
    run_workers_now: int = 0
    max_run_workers: int = 0
    run_worker_pids: set[int] = field(default_factory=set)
    connections: set[Connection] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def pods_by_pid(self) -> dict[int, str]:
        """Every live process of every pod (the leader and all its descendants), by pid. A run worker and
        its step processes belong to the run pod (``dagster-run``) that the K8sRunLauncher would create."""
        owners: dict[int, str] = {}
        for name, process in self.cluster.processes:
            if process.poll() is not None:
                continue
            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(process.pid)
                owners[leader.pid] = name
                for child in leader.children(recursive=True):
                    owners.setdefault(child.pid, name)
                    if name == "dagster-user-code" and _is_run_worker(child):
                        owners[child.pid] = RUN_POD
                        for step in child.children(recursive=True):
                            owners[step.pid] = RUN_POD
        return owners

    def sample(self) -> None:
        owners = self.pods_by_pid()
        workers = 0
        if "dagster-user-code" in self.cluster.pods:
            with contextlib.suppress(psutil.Error):
                server = psutil.Process(self.cluster.process("dagster-user-code").pid)
                for child in server.children():
                    if _is_run_worker(child):
                        workers += 1
                        self.run_worker_pids.add(child.pid)
        self.run_workers_now = workers
        self.max_run_workers = max(self.max_run_workers, workers)
        with contextlib.suppress(psutil.Error):
            for conn in psutil.net_connections(kind="tcp"):
                if conn.status != psutil.CONN_ESTABLISHED or not conn.raddr or conn.pid not in owners:
                    continue
                service = self.cluster.service_of(conn.raddr.port) if conn.raddr.ip == "127.0.0.1" else None
                if service is None:
                    continue  # the other end of a connection to this pod, or not a Service of the release
                name, port = service.rsplit(":", 1)
                if self.cluster.service_pod.get(name) == owners[conn.pid]:
                    continue  # a server talking to itself (its own probes, workers to their master)
                self.connections.add(Connection(owners[conn.pid], name, int(port)))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="rehearsal-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
