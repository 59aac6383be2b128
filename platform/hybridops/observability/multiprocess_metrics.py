"""Serve the metrics another program's processes write in prometheus_client's multiprocess mode, no login.

MLflow's server (``mlflow server --expose-prometheus <dir>``) has each worker write its counters and
histograms into ``<dir>`` as memory-mapped files, and answers ``/metrics`` itself only through its
basic-auth app, which refuses every login but the admin's there. The chart runs this module in a sidecar of
the MLflow pod on the same directory (an emptyDir, read-only here), so Prometheus scrapes without a login
and never holds the admin's password. The sidecar only reads those files: it never opens MLflow's stores
and never answers anything but metrics.

    python -m hybridops.observability.multiprocess_metrics --dir /run/mlflow-metrics --port 9100
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, multiprocess, start_http_server


def multiprocess_registry(directory: Path) -> CollectorRegistry:
    """A registry of the files in ``directory`` only: none of this process' own metrics (its GC, its
    process_* series) are mixed in with the writers'.

    Raises:
        ValueError: ``directory`` is not a directory (prometheus_client's check).
    """
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return registry


def start(directory: Path, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``http://host:port/metrics`` from a background thread (``port`` 0: any free port)."""
    return start_http_server(port, addr=host, registry=multiprocess_registry(directory))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridops.observability.multiprocess_metrics")
    parser.add_argument("--dir", type=Path, required=True, help="the writers' PROMETHEUS_MULTIPROC_DIR")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args(argv)
    if not args.dir.is_dir():  # prometheus_client's own message names its env variable, not this option
        parser.error(f"--dir {args.dir} is not a directory")
    server, thread = start(args.dir, args.host, args.port)
    stopped = threading.Event()

    # As a container's PID 1 the kernel ignores SIGTERM unless a handler is installed: without this the
    # kubelet would wait out the grace period and SIGKILL the sidecar at every rollout.
    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while thread.is_alive() and not stopped.wait(1.0):
            pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
