"""A real MLflow tracking server (``mlflow server``) on a free loopback port, for the registry scenarios.

Its backend store is a SQLite file in a temp dir or a PostgreSQL URL (tests/deploy/deploy_postgres.py), its
artifacts are served by the server itself (``mlflow-artifacts:/``) from a temp dir. ``pause`` / ``resume``
(SIGSTOP / SIGCONT on the whole process group) make a hung server: the kernel still accepts connections,
nothing answers. A module with a unique name (not conftest) so test modules import it unambiguously.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from hybridops.telemetry import TELEMETRY_OFF


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    def __init__(self, workdir: Path, backend_uri: str | None = None, workers: int = 2) -> None:
        self.workdir = workdir
        self.backend_uri = backend_uri or f"sqlite:///{workdir / 'mlflow.db'}"
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "mlflow-server.log"

    def start(self, timeout: float = 600) -> MlflowServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "artifacts").mkdir(exist_ok=True)
        exe = str(Path(sys.executable).with_name("mlflow"))
        env = {**os.environ, **TELEMETRY_OFF}
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [exe, "server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers), "--backend-store-uri", self.backend_uri,
                 "--serve-artifacts", "--artifacts-destination", (self.workdir / "artifacts").as_uri()],
                stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)  # the server and its workers

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing answers (a hung MLflow)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.resume()  # a stopped process would not act on SIGTERM
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()
        self.process = None


@contextmanager
def mlflow_server(workdir: Path, backend_uri: str | None = None, workers: int = 2) -> Iterator[MlflowServer]:
    server = MlflowServer(workdir, backend_uri, workers).start()
    try:
        yield server
    finally:
        server.stop()
