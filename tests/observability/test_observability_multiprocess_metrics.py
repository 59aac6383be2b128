"""``python -m hybridops.observability.multiprocess_metrics``: the metrics other processes write in
prometheus_client's multiprocess mode, served over HTTP without a login (MLflow's sidecar in the chart).

Writers are real separate processes with ``PROMETHEUS_MULTIPROC_DIR`` set (what MLflow's workers are); the
server runs as its own process, as the sidecar's command does. The live proof against MLflow itself is in
tests/deploy/test_deploy_mlflow_metrics.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from observability_support import free_port
from prometheus_client.parser import text_string_to_metric_families

from hybridops.observability.multiprocess_metrics import multiprocess_registry

MODULE = "hybridops.observability.multiprocess_metrics"
WRITER = """
import sys
from prometheus_client import Counter
Counter("demo_requests", "requests", ["path"]).labels(path="/x").inc(float(sys.argv[1]))
"""


def _write(directory: Path, amount: float) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", WRITER, str(amount)], env=env, check=True)


@contextmanager
def _served(directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    process = subprocess.Popen(
        [sys.executable, "-m", MODULE, "--dir", str(directory), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode() if process.stderr else "exited")
            try:
                requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _counter(text: str, name: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def test_serves_the_sum_of_every_writer_process_without_a_login(tmp_path: Path) -> None:
    _write(tmp_path, 2)
    with _served(tmp_path) as (url, _):
        first = requests.get(url, timeout=10)
        assert first.status_code == 200  # no Authorization header sent
        assert _counter(first.text, "demo_requests_total") == 2
        _write(tmp_path, 3)  # a second process, as a second MLflow worker: its file is read at each scrape
        assert _counter(requests.get(url, timeout=10).text, "demo_requests_total") == 5
        # Only the writers' metrics: not the server's own process or GC series.
        families = {f.name for f in text_string_to_metric_families(requests.get(url, timeout=10).text)}
        assert families == {"demo_requests"}


def test_the_files_are_only_read(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    tmp_path.chmod(0o555)  # as the sidecar's readOnly mount: a write would fail the scrape
    try:
        with _served(tmp_path) as (url, _):
            assert requests.get(url, timeout=10).status_code == 200
    finally:
        tmp_path.chmod(0o755)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_sigterm_stops_it_at_once(tmp_path: Path) -> None:
    """PID 1 of a container ignores SIGTERM without a handler: the module installs one."""
    with _served(tmp_path) as (_, process):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_a_missing_directory_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        multiprocess_registry(tmp_path / "absent")
    result = subprocess.run(
        [sys.executable, "-m", MODULE, "--dir", str(tmp_path / "absent"), "--port", "0"],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2 and b"--dir " + str(tmp_path / "absent").encode() in result.stderr
