"""Scenario 14: 20 processes registering versions and moving aliases at once on an MLflow server backed by
PostgreSQL, while 4 more apply the Feast definitions to a SQL registry in the same PostgreSQL.

Five of the twenty trainings are duplicates (same seed, same fingerprint). Proves: every process succeeds;
one version per distinct training (the duplicates get the same version, the racing copies are gone); every
alias move is recorded once, in the warehouse and as a tag with a key of its own on each version involved
(none overwritten), and the champion and challenger histories are unbroken chains (each move starts where
the previous one ended) ending at the aliases the registry holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from mlflow_server import mlflow_server

from hybridops.registry.alias_events import tag_events
from hybridops.registry.client import registry_client
from hybridops.registry.lock import lock_name, tickets
from hybridops.registry.models import FINGERPRINT_TAG, alias_history
from hybridops.settings import FeastSettings, MlflowSettings, Settings

WORKER = Path(__file__).with_name("race_worker.py")
MODEL_WORKERS, FEAST_WORKERS = 20, 4
TRAININGS = [i if i < 15 else i - 15 for i in range(MODEL_WORKERS)]  # 15 distinct, 5 repeated

# Twenty processes on two cores for minutes: the slow group CI runs after `make test`.
pytestmark = pytest.mark.slow


def _database(url: str, name: str) -> str:
    con = psycopg2.connect(url)
    try:
        con.autocommit = True  # CREATE DATABASE runs outside a transaction
        with con.cursor() as cur:
            cur.execute(f"create database {name}")
    finally:
        con.close()
    return url.rsplit("/", 1)[0] + f"/{name}"


def _log_trainings(tracking_uri: str) -> list[dict[str, str]]:
    """One MLflow run per worker; workers with one training id get runs of the same training (same seed)."""
    import lightgbm as lgb
    import mlflow
    from registry_support import fast_logging, synthetic

    from hybridops.modeling.artifact import log_booster

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("race")
    runs = []
    for training in TRAININGS:
        x, y = synthetic(300, training)
        booster = lgb.train(
            {"objective": "binary", "num_leaves": 5, "verbose": -1, "seed": training, "num_threads": 1},
            lgb.Dataset(x, label=y),
            num_boost_round=5,
        )
        with fast_logging(), mlflow.start_run(experiment_id=experiment):
            logged = log_booster(booster, input_example=x.head(2))
        runs.append({"model_uri": logged.model_uri, "run_id": logged.run_id, "sha256": logged.sha256})
    return runs


def _chain(events: list[tuple[str | None, str | None]], alias: str) -> None:
    before = None
    for n, (from_version, to_version) in enumerate(events):
        assert from_version == before, (
            f"{alias} event {n} starts at {from_version}, the alias was at {before}"
        )
        before = to_version


def test_twenty_processes_race_on_mlflow_and_feast_on_postgresql(tmp_path: Path, postgresql_url: str) -> None:
    mlflow_db, feast_db = _database(postgresql_url, "mlflow"), _database(postgresql_url, "feast")
    with mlflow_server(tmp_path / "mlflow", backend_uri=mlflow_db) as server:
        _race(tmp_path, server.url, feast_db)


def _race(tmp_path: Path, tracking_uri: str, feast_db: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    logged = _log_trainings(tracking_uri)
    go, ready = tmp_path / "go", tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), *sys.path])}
    jobs = []
    for i in range(MODEL_WORKERS + FEAST_WORKERS):
        feast = i >= MODEL_WORKERS
        args = {
            "mode": "feast" if feast else "model",
            "home": str(home),
            "tracking_uri": tracking_uri,
            "registry": feast_db,
            "index": i,
            "training": None if feast else TRAININGS[i],
            **({} if feast else logged[i]),
            "go": str(go),
            "ready": str(ready / str(i)),
            "out": str(tmp_path / f"out-{i}.json"),
        }
        log = (tmp_path / f"worker-{i}.log").open("wb")
        jobs.append(
            (
                subprocess.Popen(
                    [sys.executable, str(WORKER), json.dumps(args)], stdout=log, stderr=log, env=env
                ),
                log,
            )
        )
    try:
        deadline = time.monotonic() + 600
        while len(list(ready.iterdir())) < len(jobs):
            for n, (job, _) in enumerate(jobs):
                assert job.poll() is None, (tmp_path / f"worker-{n}.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the workers did not get ready"
            time.sleep(0.1)
        started = time.monotonic()
        go.touch()
        for n, (job, log) in enumerate(jobs):
            assert job.wait(timeout=600) == 0, (tmp_path / f"worker-{n}.log").read_text()[-3000:]
            log.close()
        elapsed = time.monotonic() - started
    finally:
        for job, log in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
            log.close()
    results = [json.loads((tmp_path / f"out-{i}.json").read_text()) for i in range(len(jobs))]
    models, feasts = results[:MODEL_WORKERS], results[MODEL_WORKERS:]

    settings = Settings(home=home, mlflow=MlflowSettings(tracking_uri=tracking_uri, model_name="race"))
    client = registry_client(settings)
    versions = {mv.version: mv for mv in client.search_model_versions("name = 'race'")}
    # One version per distinct training, and each worker got the version of its training.
    assert len(versions) == len(set(TRAININGS))
    by_training = {}
    for training, result in zip(TRAININGS, models, strict=True):
        assert by_training.setdefault(training, result["version"]) == result["version"]
        mv = versions[result["version"]]
        assert mv.tags[FINGERPRINT_TAG] == f"training-{training}"
    assert len(set(by_training.values())) == len(set(TRAININGS))

    # Every alias move is recorded once, and each alias's history is an unbroken chain.
    history = alias_history(settings)
    rows = [
        tuple(r) for r in history[["alias", "from_version", "to_version", "reason"]].itertuples(index=False)
    ]
    for alias in ("champion", "challenger", "previous_champion"):
        _chain([(f, t) for a, f, t, _ in rows if a == alias], alias)
    aliases = {k: str(v) for k, v in client.get_registered_model("race").aliases.items()}
    last = {a: t for a, _, t, _ in rows}
    assert aliases.get("champion") == last["champion"]
    assert aliases.get("previous_champion") == last.get("previous_champion")
    assert aliases.get("challenger") == last.get("challenger")
    champion_moves = sum(1 for a, *_ in rows if a == "champion")
    assert len(set(TRAININGS)) <= champion_moves <= MODEL_WORKERS  # a promotion of the champion is a no-op

    # The registry tells the same story: each event is a tag on every version it involves, none lost.
    tagged = {v: tag_events(dict(mv.tags)) for v, mv in versions.items()}
    expected_tags = 0
    for alias, before, after, reason in rows:
        for version in {before, after} - {None}:
            expected_tags += 1
            assert any(
                (e["alias"], e["from_version"], e["to_version"], e["reason"])
                == (alias, before, after, reason)
                for e in tagged[version]
            ), f"{alias} {before}->{after} not tagged on version {version}"
    assert sum(len(events) for events in tagged.values()) == expected_tags
    # No ticket left behind: the lock model stays (it is never deleted), with no live version.
    assert sorted(m.name for m in client.search_registered_models()) == ["race", lock_name("race")]
    assert tickets(client, lock_name("race")) == []

    # Feast's SQL registry: every apply succeeded and the definitions are there once.
    from hybridops.features.store import feature_store

    store = feature_store(Settings(home=home, feast=FeastSettings(registry=feast_db)))
    names = {view.name for view in store.list_feature_views()}
    assert set(feasts[0]["applied"]) >= names and names
    assert all(sorted(f["applied"]) == sorted(feasts[0]["applied"]) for f in feasts)
    seconds = sorted(r["seconds"] for r in models)
    print(
        f"\nscenario 14: {MODEL_WORKERS} registering + {FEAST_WORKERS} feast apply in {elapsed:.1f} s; "
        f"{len(versions)} versions for {len(set(TRAININGS))} trainings; {len(rows)} alias events "
        f"({champion_moves} champion moves), {expected_tags} event tags; register+promote per process "
        f"median {seconds[len(seconds) // 2]:.1f} s, max {seconds[-1]:.1f} s; feast apply max "
        f"{max(f['seconds'] for f in feasts):.1f} s"
    )
