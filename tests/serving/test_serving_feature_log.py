"""The served-feature log in the cluster's shape: two service processes (two pods) write their own files into
one folder of a shared home, the skew audit reads every replica's rows and compares them with Feast's
offline store, and the folder stays within ``serving.log_max_bytes``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import requests
from serving_support import World, free_port

from hybridops.features.store import feature_store
from hybridops.observability.skew import audit, read_feature_log
from hybridops.serving.feature_log import FeatureLog, enforce_bound, feature_log_dir, log_files
from hybridops.serving.metrics import ServingMetrics
from hybridops.settings import ServingSettings, Settings

MAX_BYTES = 90_000  # rows of 33 features (was 60_000 for 22): room for both writers' files


@contextmanager
def service_process(world: World, serving: dict[str, object]) -> Iterator[str]:
    """``hybridops serve`` as its own process on the world's home, as a pod on the shared data volume."""
    port = free_port()
    env = {
        **os.environ,
        "HYBRIDOPS_HOME": str(world.settings.home_dir),
        "HYBRIDOPS_FEAST__OFFLINE_STORE": world.settings.feast.offline_store,
        "HYBRIDOPS_SERVING": json.dumps(serving),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from hybridops.cli.app import main; main()", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                assert process.stderr is not None
                raise RuntimeError(f"the service did not become ready: {process.stderr.read()[-2000:]!r}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()  # SIGTERM: uvicorn's shutdown flushes the log, as a pod's termination does
        process.wait(timeout=30)


def _flights(world: World) -> list[dict[str, object]]:
    rows = world.fct[world.fct["tailnum"].notna()].head(120)
    return [
        {"carrier": r.carrier, "flight": int(r.flight), "origin": r.origin, "dest": r.dest,
         "tailnum": r.tailnum, "sched_dep": r.sched_dep_local.isoformat()}
        for r in rows.itertuples()
    ]  # fmt: skip


@pytest.mark.slow  # two service processes under load: the slow group
def test_two_replicas_log_to_one_folder_and_the_audit_compares_their_rows(world: World) -> None:
    folder = feature_log_dir(world.settings)
    before = set(log_files(folder))
    serving = {
        "log_sample_rate": 1.0,
        "log_flush_seconds": 0.2,
        "log_flush_rows": 20,
        "log_max_bytes": MAX_BYTES,
    }
    flights = _flights(world)
    with service_process(world, serving) as first, service_process(world, serving) as second:
        for i in range(0, len(flights), 10):
            url = (first, second)[(i // 10) % 2]
            answer = requests.post(f"{url}/predict", json={"flights": flights[i : i + 10]}, timeout=30)
            assert answer.status_code == 200, answer.text
    new = [path for path in log_files(folder) if path not in before]
    writers = {path.name.rsplit("-", 2)[0] for path in new}
    assert len(writers) == 2, writers  # one set of files per process

    # The bound: the folder (every writer's files) within log_max_bytes, except the newest file.
    files = log_files(folder)
    sizes = [path.stat().st_size for path in files]
    assert sum(sizes[:-1]) <= MAX_BYTES, sizes

    log = read_feature_log(world.settings)
    assert len(log) > 0
    report = audit(feature_store(world.settings), log)
    assert report["compared"].sum() > 0
    assert report["mismatches"].sum() == 0, report[report["mismatches"] > 0]


def test_the_bound_deletes_the_oldest_files_of_every_writer(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, serving=ServingSettings(log_sample_rate=1.0, log_flush_rows=1, log_max_bytes=20_000)
    )
    folder = feature_log_dir(settings)
    # A file of a pod that is gone, older than everything this writer logs.
    gone = folder / "date=2013-01-01" / "old-pod_1-1356998400000-deadbeef.parquet"
    gone.parent.mkdir(parents=True)
    gone.write_bytes(b"x" * 15_000)
    log = FeatureLog(settings, ["temp"], ["origin_weather"], ServingMetrics())

    class Flight:
        def model_dump(self) -> dict[str, object]:
            return {"carrier": "UA", "flight": 1, "origin": "EWR", "dest": "IAH", "tailnum": "N1",
                    "sched_dep": "2013-01-31T16:00:00"}  # fmt: skip

    written = []
    for i in range(40):
        log.add(
            [Flight()] * 50, ["EWR-IAH"] * 50, np.full((50, 1), float(i)), np.full((50, 1), 1.36e9),
            np.full(50, 0.5), np.zeros(50, dtype=bool), np.full(50, 1.36e9), ("flight_delay", "1"),
        )  # fmt: skip
        path = log.flush()
        assert path is not None
        written.append((path, path.stat().st_size))
    assert (
        not gone.exists() and not gone.parent.exists()
    )  # the other writer's old file (and its day) went first
    remaining = log_files(folder)
    assert remaining == [p for p, _ in written if p.exists()] and remaining[-1] == written[-1][0]
    assert 1 < len(remaining) < len(written)
    assert sum(p.stat().st_size for p in remaining) <= 20_000 < sum(size for _, size in written)
    assert len(read_feature_log(settings)) == 50 * len(remaining)
    assert enforce_bound(folder, 1) > 0 and log_files(folder) == [written[-1][0]]  # the newest file stays


def test_the_bound_must_be_a_real_size() -> None:
    with pytest.raises(ValueError, match="log_max_bytes"):
        ServingSettings(log_max_bytes=0)
