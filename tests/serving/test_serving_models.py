"""The served model follows the registry alias without a restart, survives a registry outage and restarts
from the disk cache when the registry is down."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests
from serving_support import World, running_server

from hybridops.registry.models import promote
from hybridops.settings import MlflowSettings

FLIGHT = {
    "carrier": "UA",
    "flight": 1,
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N1",
    "sched_dep": "2013-01-31T16:00:00",
}


def _version(url: str) -> str:
    return requests.post(f"{url}/predict", json={"flights": [FLIGHT]}, timeout=10).json()["model"]["version"]


def _wait_for(url: str, version: str, seconds: float = 15) -> str:
    deadline = time.monotonic() + seconds
    seen = _version(url)
    while seen != version and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = _version(url)
    return seen


def _down(world: World, tmp_path: Path) -> MlflowSettings:
    """An MLflow store that cannot be opened (its "folder" is a regular file)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    return world.settings.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{blocker / 'mlflow.db'}"})


def test_alias_move_registry_outage_and_restart_from_cache(world: World, tmp_path: Path) -> None:
    settings = world.settings
    first, second = sorted(world.boosters, key=int)
    try:
        with running_server(settings) as running:
            assert _version(running.url) == first
            promote(settings, second, "serving test: move the alias")
            assert _wait_for(running.url, second) == second  # no restart
            metrics = requests.get(f"{running.url}/metrics", timeout=5).text
            assert f'version="{second}"' in metrics

            # the registry becomes unreachable: the service keeps its model in memory
            holder = running.app.state.service.holder
            holder.settings = settings.model_copy(update={"mlflow": _down(world, tmp_path)})
            time.sleep(3 * settings.serving.model_poll_seconds)
            assert holder.last_error is not None and holder.last_error.startswith("registry")
            assert _version(running.url) == second
            assert requests.get(f"{running.url}/readyz", timeout=5).status_code == 200
            assert 'result="failure"' in requests.get(f"{running.url}/metrics", timeout=5).text

        cache = settings.home_dir / "serving" / "model"
        meta = json.loads((cache / "model.json").read_text())
        assert meta["version"] == second and len(meta["sha256"]) == 64

        # restart with the registry down: the disk cache serves
        with running_server(settings.model_copy(update={"mlflow": _down(world, tmp_path)})) as running:
            assert _version(running.url) == second
            ready = requests.get(f"{running.url}/readyz", timeout=5).json()
            assert ready["model"]["source"] == "disk_cache"

        # a tampered cache is refused: no model, 503 with Retry-After, liveness unaffected
        cached = cache / meta["file"]
        assert meta["file"] == f"model-{meta['sha256']}.lgb"
        cached.write_text(cached.read_text() + "\n")
        with running_server(settings.model_copy(update={"mlflow": _down(world, tmp_path)})) as running:
            response = requests.post(f"{running.url}/predict", json={"flights": [FLIGHT]}, timeout=10)
            assert response.status_code == 503 and "Retry-After" in response.headers
            assert "sha256" in response.json()["detail"]
            assert requests.get(f"{running.url}/healthz", timeout=5).status_code == 200
            assert requests.get(f"{running.url}/readyz", timeout=5).status_code == 503
    finally:
        promote(settings, first, "serving test: restore")
