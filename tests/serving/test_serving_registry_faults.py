"""Scenarios 11 and 12: the service under registry faults, against a real ``mlflow server`` on loopback and
``hybridops serve`` processes.

11. MLflow hung (SIGSTOP on the server and its workers: connections accepted, nothing answered): the
    running service keeps serving the same answers and stays ready; a new process starts within
    ``serving.registry_start_seconds`` from the disk cache, whose file must have the registry's hash; with
    a damaged cache it stays unready without exiting (``/healthz`` 200, ``/readyz`` 503) and becomes ready
    by itself once MLflow answers; a cache forged consistently (file and ``model.json``) while MLflow was
    away is replaced by the registry's model as soon as MLflow answers.
12. champion -> bad version -> rollback with the ``hybridops model`` CLI: the running service follows the
    alias, and after the rollback its answers equal the old champion's bit for bit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mlflow_server import MlflowServer
from serving_support import (
    ServiceProcess,
    World,
    free_port,
    register_booster,
    settings_env,
    start_service_process,
    stop_service_process,
)

from hybridops.features.request import model_features
from hybridops.settings import MlflowSettings, Settings

FLIGHTS = [
    {
        "carrier": ("UA", "AA", "B6")[n % 3],
        "flight": n,
        "origin": ("EWR", "JFK")[n % 2],
        "dest": ("IAH", "ORD")[n % 2],
        "tailnum": f"N{n % 5}",
        "sched_dep": f"2013-01-{10 + n % 20:02d}T{6 + n % 16:02d}:{(7 * n) % 60:02d}:00",
    }
    for n in range(40)
]
EXE = str(Path(sys.executable).with_name("hybridops"))


@dataclass
class Registry:
    server: MlflowServer
    settings: Settings
    good: str  # the champion
    bad: str  # another version


# MLflow hung and a bad version rolled back through running services: minutes; the slow group CI runs.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A home of its own (the world's Feast store copied, an empty model cache) on a real MLflow server."""
    import pandas as pd

    tmp = tmp_path_factory.mktemp("registry-faults")
    home = tmp / "home"
    shutil.copytree(world.settings.feast_dir, home / "feast")
    server = MlflowServer(tmp / "mlflow").start()
    try:
        settings = world.with_(
            home=home,
            mlflow=MlflowSettings(tracking_uri=server.url, model_name="flight_delay"),
            serving=world.settings.serving.model_copy(
                update={"registry_start_seconds": 3.0, "model_poll_seconds": 0.3}
            ),
        )
        example = pd.DataFrame([[0.0] * len(model_features())], columns=model_features())
        first, second = (world.boosters[v] for v in sorted(world.boosters, key=int))
        good = register_booster(settings, first, example, champion=True)
        bad = register_booster(settings, second, example, champion=False)
        yield Registry(server, settings, good, bad)
    finally:
        server.stop()


def _predict(url: str) -> tuple[str, list[float]]:
    response = requests.post(f"{url}/predict", json={"flights": FLIGHTS}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["model"]["version"], [p["delay_probability"] for p in body["predictions"]]


def _readyz(url: str) -> tuple[int, dict]:
    response = requests.get(f"{url}/readyz", timeout=5)
    return response.status_code, response.json()


def _until(check, seconds: float, what: str) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except requests.RequestException:
            pass
        assert time.monotonic() - start < seconds, f"not within {seconds} s: {what}"
        time.sleep(0.1)


@contextmanager
def service_process(settings: Settings, log: Path) -> Iterator[ServiceProcess]:
    """``hybridops serve`` once ready; a loaded shared machine can take minutes to import it."""
    running = start_service_process(settings, log, timeout=600)
    try:
        yield running
    finally:
        stop_service_process(running.process)


def _spawn(settings: Settings, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [EXE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, env=settings_env(settings),
        )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def _cache(settings: Settings) -> tuple[Path, dict]:
    folder = settings.home_dir / "serving" / "model"
    return folder, json.loads((folder / "model.json").read_text())


def test_mlflow_hung_the_service_serves_and_a_new_process_starts_from_the_verified_cache(
    registry: Registry, tmp_path: Path
) -> None:
    settings, server = registry.settings, registry.server
    with service_process(settings, tmp_path / "a.log") as a:
        version, baseline = _predict(a.url)
        assert version == registry.good and _readyz(a.url)[1]["model"]["source"] == "registry"
        folder, meta = _cache(settings)
        assert meta["file"] == f"model-{meta['registry_sha256']}.lgb"
        tag = registry_tag(settings, registry.good)
        assert meta["registry_sha256"] == tag  # the cache is named by the registry's hash of the file

        server.pause()
        try:
            # The running service: same answers, still ready, while every registry call hangs.
            answers, slowest, end = 0, 0.0, time.monotonic() + 3
            while time.monotonic() < end:
                started = time.monotonic()
                assert _predict(a.url) == (registry.good, baseline)
                slowest = max(slowest, time.monotonic() - started)
                answers += 1
            assert _readyz(a.url)[0] == 200

            # A new process with the registry hung: ready from the cache after registry_start_seconds.
            b, b_url = _spawn(settings, tmp_path / "b.log")
            try:
                b_ready = _until(lambda: _readyz(b_url)[0] == 200, 600, "B ready from the cache")
                assert _readyz(b_url)[1]["model"] == {
                    "name": "flight_delay", "version": registry.good, "source": "disk_cache"
                }  # fmt: skip
                assert _predict(b_url) == (registry.good, baseline)  # bit for bit
            finally:
                stop_service_process(b)

            # A damaged cache file: refused; the process stays up and unready, no crash loop.
            cached = folder / meta["file"]
            original = cached.read_bytes()
            cached.write_bytes(original.replace(b"tree", b"TREE", 1))
            c, c_url = _spawn(settings, tmp_path / "c.log")
            try:
                _until(lambda: requests.get(f"{c_url}/healthz", timeout=2).status_code == 200, 600, "C live")
                time.sleep(settings.serving.registry_start_seconds + 2)
                status, body = _readyz(c_url)
                assert status == 503 and c.poll() is None
                assert "registry's hash" in " ".join(body["problems"]), body
                assert requests.get(f"{c_url}/healthz", timeout=2).status_code == 200
                server.resume()
                c_ready = _until(lambda: _readyz(c_url)[0] == 200, 300, "C ready once MLflow answers")
                assert _readyz(c_url)[1]["model"]["source"] == "registry"
                assert _predict(c_url) == (registry.good, baseline)
            finally:
                stop_service_process(c)
            assert cached.read_bytes() == original  # C rewrote the cache from the registry

            # A cache forged consistently (another model's bytes under the version's name) while MLflow
            # is away: served until MLflow answers, then replaced by the registry's model.
            bad_text = registry_file(settings, registry.bad)
            server.pause()
            import hashlib

            forged_sha = hashlib.sha256(bad_text).hexdigest()
            (folder / f"model-{forged_sha}.lgb").write_bytes(bad_text)
            (folder / "model.json").write_text(
                json.dumps({**meta, "file": f"model-{forged_sha}.lgb", "sha256": forged_sha,
                            "registry_sha256": forged_sha})
            )  # fmt: skip
            d, d_url = _spawn(settings, tmp_path / "d.log")
            try:
                _until(lambda: _readyz(d_url)[0] == 200, 600, "D ready from the forged cache")
                assert _predict(d_url)[1] != baseline
                server.resume()
                d_fixed = _until(lambda: _predict(d_url) == (registry.good, baseline), 300, "D replaced")
                assert _readyz(d_url)[1]["model"]["source"] == "registry"
            finally:
                stop_service_process(d)
        finally:
            server.resume()
        assert _predict(a.url) == (registry.good, baseline)
    print(
        f"\nscenario 11: MLflow stopped, running service {answers} answers in 3 s (slowest {slowest * 1000:.0f} ms), "
        f"all equal; new process ready from the cache in {b_ready:.1f} s; damaged cache: unready, ready "
        f"{c_ready:.1f} s after MLflow resumed; forged cache replaced {d_fixed:.1f} s after MLflow resumed"
    )


def registry_tag(settings: Settings, version: str) -> str:
    from hybridops.registry.client import registry_client

    mv = registry_client(settings).get_model_version(settings.mlflow.model_name, version)
    return str(mv.tags["hybridops.model_sha256"])


def registry_file(settings: Settings, version: str) -> bytes:
    from hybridops.registry.models import load_model

    return load_model(settings, f"{settings.mlflow.model_name}/{version}").model_text


def _cli(settings: Settings, *args: str) -> str:
    result = subprocess.run(
        [EXE, "model", *args], env=settings_env(settings), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_champion_bad_version_rollback_through_the_running_service(
    registry: Registry, tmp_path: Path
) -> None:
    settings = registry.settings
    with service_process(settings, tmp_path / "serve.log") as service:
        assert _predict(service.url)[0] == registry.good
        old = _predict(service.url)[1]
        out = _cli(settings, "promote", registry.bad, "--reason", "scenario 12: a bad version")
        assert f"to version {registry.bad}" in out
        promoted = _until(lambda: _predict(service.url)[0] == registry.bad, 60, "the bad version served")
        assert _predict(service.url)[1] != old
        out = _cli(settings, "rollback", "--reason", "scenario 12: live AUC dropped")
        assert f"back to version {registry.good}" in out
        rolled = _until(lambda: _predict(service.url)[0] == registry.good, 60, "the old champion served")
        assert _predict(service.url) == (registry.good, old)  # bit for bit (JSON floats round-trip)
        from hybridops.registry.models import alias_history

        champion_moves = alias_history(settings).query("alias == 'champion'")
        assert champion_moves[["from_version", "to_version", "reason", "actor"]].values.tolist()[-2:] == [
            [registry.good, registry.bad, "scenario 12: a bad version", "cli"],
            [registry.bad, registry.good, "rollback: scenario 12: live AUC dropped", "cli"],
        ]
    print(
        f"\nscenario 12: bad version served {promoted:.2f} s after promote, old champion {rolled:.2f} s after rollback"
    )
