"""Helpers of the serving tests: a small real world (warehouse, Feast store, registered LightGBM champion),
a uvicorn server on a free loopback port, a redis-server in a temp dir.

A module with a unique name (not conftest) so test modules import it unambiguously.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import uvicorn
from tools import require_tool
from warehouse_builders import fct_row, load_tables, planes_frame, weather_frame

from hybridops.features.compute import build_feature_tables
from hybridops.features.request import categorical_features, model_features, with_request_features
from hybridops.features.store import (
    apply_definitions,
    feature_names,
    feature_store,
    historical_features,
    materialize_month,
)
from hybridops.inference.batch import scoring_entities
from hybridops.modeling.artifact import log_booster
from hybridops.registry.client import registry_client
from hybridops.registry.models import promote, register_candidate
from hybridops.settings import FeastSettings, RedisOnlineStore, ServingSettings, Settings

EXPERIMENT = "serving-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- a hand-made warehouse (the builders of tests/warehouse_builders.py, like tests/inference) ----------
def _temp(hour: pd.Timestamp, origin: str) -> float:
    return float(20 + 15 * np.sin(2 * np.pi * (hour.hour - 9) / 24) + (5 if origin == "JFK" else 0))


def _tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    hours = pd.date_range("2013-01-01 00:00", "2013-02-01 04:00", freq="h")
    weather = weather_frame([(o, h, _temp(h, o)) for o in ("EWR", "JFK") for h in hours])
    rows = []
    starts = pd.date_range("2013-01-01 11:00", "2013-01-31 20:00", periods=400).round("min")
    for n, start in enumerate(starts):
        origin = ("EWR", "JFK")[n % 2]
        delayed = rng.random() < (0.7 if _temp(start.floor("h"), origin) > 25 else 0.15)
        delay = float(rng.integers(20, 90)) if delayed else float(rng.integers(-5, 10))
        carrier = ("AA", "UA", "B6")[n % 3]
        rows.append(fct_row(n, start, delay, carrier, origin, ("IAH", "ORD")[n % 2], f"N{n % 5}"))
    planes = planes_frame([(f"N{i}", 1995 + 3 * i, 100 + 20 * i, 2) for i in range(4)])  # N4 unknown
    fct = pd.DataFrame(rows).astype({"dep_delay": "float64", "arr_delay": "float64", "delayed_15": "boolean"})
    return {"fct_flights": fct, "weather": weather, "planes": planes}


@dataclass
class World:
    """A home with a materialized Feast store (January 2013) and a registered champion."""

    settings: Settings
    warehouse: Path  # the feature warehouse (separate from settings.warehouse_db, the registry's events)
    boosters: dict[str, lgb.Booster]  # version -> booster
    fct: pd.DataFrame

    def with_(self, **changes: Any) -> Settings:
        return self.settings.model_copy(update=changes)


def _experiment(settings: Settings) -> str:
    client = registry_client(settings)
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return found.experiment_id
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        return client.create_experiment(EXPERIMENT)  # the server's own artifact store, as training does
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(EXPERIMENT, artifact_location=settings.mlflow_artifacts_dir.as_uri())


def register_booster(
    settings: Settings, booster: lgb.Booster, example: pd.DataFrame, *, champion: bool
) -> str:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlflow.models, "infer_pip_requirements", lambda *a, fallback=None, **k: fallback)
        with mlflow.start_run(experiment_id=_experiment(settings)):
            logged = log_booster(booster, input_example=example)
    version = register_candidate(settings, logged.model_uri, logged.run_id, logged.sha256)
    if champion:
        promote(settings, version, "serving tests")
    return version


def build_world(home: Path, rounds: int = 20) -> World:
    settings = Settings(
        home=home,
        feast=FeastSettings(offline_store="duckdb"),
        serving=ServingSettings(model_poll_seconds=0.3, log_sample_rate=1.0, log_flush_seconds=0.2),
    )
    warehouse = home / "features.duckdb"
    home.mkdir(parents=True, exist_ok=True)
    tables = _tables(np.random.default_rng(42))
    with duckdb.connect(str(warehouse)) as con:
        load_tables(con, tables["fct_flights"], tables["weather"], tables["planes"])
        build_feature_tables(con, settings.parquet_dir, "2013-01")
        entities = scoring_entities(con, "2013-01")
    store = feature_store(settings)
    apply_definitions(store, settings)
    materialize_month(store, "2013-01")
    # The model's inputs as training assembles them: the Feast features and the request features.
    train = with_request_features(historical_features(store, entities))
    names = model_features()
    label = train["delayed_15"].astype(int).to_numpy()
    x = train[names].astype("float64")
    params = {"objective": "binary", "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5, "seed": 0}
    boosters = {}
    for r in (rounds, rounds // 2):
        dataset = lgb.Dataset(x, label=label, categorical_feature=categorical_features(names))
        booster = lgb.train(params, dataset, num_boost_round=r)
        version = register_booster(settings, booster, x.head(3), champion=not boosters)
        boosters[version] = booster
    return World(settings=settings, warehouse=warehouse, boosters=boosters, fct=tables["fct_flights"])


# --- servers ----------------------------------------------------------------------------------------
@dataclass
class Running:
    url: str
    app: Any
    server: uvicorn.Server


@contextmanager
def running_server(settings: Settings) -> Iterator[Running]:
    """The service on a free loopback port in a thread of this process (a real uvicorn server)."""
    from hybridops.serving.app import create_app

    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Running(url=f"http://127.0.0.1:{port}", app=app, server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@dataclass
class ServiceProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the HYBRIDOPS_* environment a ``hybridops`` process reads."""
    env = {**os.environ}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        env[f"HYBRIDOPS_{name.upper()}"] = json.dumps(value) if isinstance(value, dict) else str(value)
    return env


def start_service_process(settings: Settings, log: Path, timeout: float = 120) -> ServiceProcess:
    """``hybridops serve`` as a process of its own on a free loopback port, once /readyz answers 200."""
    exe = Path(sys.executable).with_name("hybridops")
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, env=settings_env(settings),
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"hybridops serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return ServiceProcess(url, process, log)
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop_service_process(process)
            raise RuntimeError(f"hybridops serve not ready: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def stop_service_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # SIGINT skips the drain
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def service_process(settings: Settings, log: Path) -> Iterator[ServiceProcess]:
    running = start_service_process(settings, log)
    try:
        yield running
    finally:
        stop_service_process(running.process)


class RedisServer:
    """A throwaway redis-server on a free loopback port, data in a temp dir."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_tool("redis-server")
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel, nothing answers (a hung Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.resume()  # a stopped process would not act on SIGTERM
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    @property
    def online_store(self) -> RedisOnlineStore:
        return RedisOnlineStore(connection_string=f"127.0.0.1:{self.port}")


def redis_settings(world: World, redis: RedisServer, **serving: Any) -> Settings:
    """The world's settings on a Redis online store, materialized into it."""
    feast = world.settings.feast.model_copy(update={"online_store": redis.online_store})
    settings = world.with_(feast=feast)
    if serving:
        settings = settings.model_copy(update={"serving": settings.serving.model_copy(update=serving)})
    materialize_month(feature_store(settings), "2013-01")
    return settings


# --- Feast's own read path, the reference of the service's one-round-trip reader ----------------------
def feast_online_rows(settings: Settings, rows: list[dict[str, str | None]]) -> dict[str, np.ndarray]:
    """matrix / event_ts / missing of ``rows`` through Feast's ``OnlineStore.online_read``, one call per view
    and per flight, values through Feast's ``feast_value_type_to_python_type``."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    from hybridops.features.store import load_definitions_module

    module = load_definitions_module()
    store = feature_store(settings)
    online = store._get_provider().online_store
    names = feature_names()
    views = list(module.VIEW_FEATURES)
    matrix = np.full((len(rows), len(names)), np.nan)
    event_ts = np.full((len(rows), len(views)), np.nan)
    missing = np.ones((len(rows), len(views)), dtype=bool)
    for v, view_name in enumerate(views):
        entity = module.VIEW_ENTITY[view_name]
        view = store.get_feature_view(view_name)
        features = list(module.VIEW_FEATURES[view_name])
        for i, row in enumerate(rows):
            if row[entity] is None:
                continue
            key = EntityKey(join_keys=[entity], entity_values=[Value(string_val=row[entity])])
            ((ts, values),) = online.online_read(store.config, view, [key], list(features))
            python = {name: feast_value_type_to_python_type(val) for name, val in (values or {}).items()}
            if not any(python.get(name) is not None for name in features):
                continue
            missing[i, v] = False
            event_ts[i, v] = ts.timestamp()
            for name in features:
                if python.get(name) is not None:
                    matrix[i, names.index(name)] = float(python[name])
    return {"matrix": matrix, "event_ts": event_ts, "missing": missing}
