"""The MLflow run of a training: a real SQLite tracking store under tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from hybridops.modeling.artifact import MODEL_FILE, SHA_TAG, load_booster
from hybridops.settings import Settings
from hybridops.training.tracking import git_commit, track_training
from hybridops.training.train import predict, train_model


@pytest.fixture(scope="module")
def tracked(synthetic_split: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs of the same training (each MLflow model log infers pip requirements: ~8 s)."""
    s = synthetic_split
    settings = Settings(home=tmp_path_factory.mktemp("tracking") / "home", training=s["settings"])
    trained = train_model(s["train"], s["holdout"], s["set"].features, settings.training)
    lineage = {"hybridops.dagster_run_id": "dagster-run-1", "cancelled_excluded": "47"}
    runs = [
        track_training(settings, s["set"], s["plan"], trained, lineage, holdout=s["holdout"]),
        track_training(settings, s["set"], s["plan"], trained, {"dagster_run_id": "dagster-run-2"}),
    ]
    return {**s, "settings_full": settings, "trained": trained, "runs": runs}


def test_run_holds_params_metrics_lineage_and_artifacts(tracked: dict[str, Any]) -> None:
    settings: Settings = tracked["settings_full"]
    first, second = tracked["runs"]
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    assert settings.mlflow_tracking_uri.startswith("sqlite:///")
    assert (settings.mlflow_dir / "mlflow.db").exists()
    experiment = client.get_experiment_by_name("flight_delay")
    assert experiment is not None and experiment.experiment_id == first.experiment_id
    assert experiment.artifact_location == settings.mlflow_artifacts_dir.as_uri()

    run = client.get_run(first.run_id)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    plan, training_set = tracked["plan"], tracked["set"]
    assert tags["hybridops.train_months"] == "2013-01,2013-02"
    assert tags["hybridops.holdout_month"] == "2013-03"
    assert tags["hybridops.rows_train"] == str(len(tracked["train"]))
    assert tags["hybridops.rows_holdout"] == str(len(tracked["holdout"]))
    assert tags["hybridops.training_set_sha256"] == training_set.sha256
    assert tags["hybridops.feature_views"] == (
        "carrier_delay_stats:0,flight_request:0,origin_hour_delay_stats:0,origin_intraday:0,origin_weather:0,"
        "plane_profile:0,route_delay_stats:0,tail_last_flight:0"
    )
    assert tags["hybridops.git_commit"] == git_commit() != ""
    assert tags["hybridops.dagster_run_id"] == "dagster-run-1"
    assert tags["hybridops.cancelled_excluded"] == "47"  # lineage keys get the prefix
    assert client.get_run(second.run_id).data.tags["hybridops.dagster_run_id"] == "dagster-run-2"
    assert tags[SHA_TAG] == first.sha256

    assert params["seed"] == "42" and params["deterministic"] == "True"
    assert params["num_threads"] == "2" and params["objective"] == "binary"
    assert (
        params["num_boost_round"] == "40" and params["learning_rate"] == "0.1" and params["max_bin"] == "63"
    )
    assert params["train_months"] == ",".join(plan.train) and params["holdout_month"] == plan.holdout
    holdout = tracked["trained"].holdout_metrics
    for name in ("auc", "logloss", "brier", "ece"):
        assert metrics[f"holdout_{name}"] == pytest.approx(getattr(holdout, name))
    assert metrics["train_auc"] == pytest.approx(tracked["trained"].train_metrics.auc)
    assert first.metrics == second.metrics and first.metrics["holdout_auc"] == holdout.auc

    artifacts = {a.path for a in client.list_artifacts(first.run_id, "evaluation")}
    assert artifacts == {
        "evaluation/calibration.json", "evaluation/calibration.csv", "evaluation/reliability.png",
        "evaluation/training_set.json",
    }  # fmt: skip
    local = Path(client.download_artifacts(first.run_id, "evaluation"))
    bins = json.loads((local / "calibration.json").read_text())["bins"]
    assert sum(b["count"] for b in bins) == holdout.rows
    assert (local / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_is_native_lightgbm_and_reproducible(tracked: dict[str, Any]) -> None:
    settings: Settings = tracked["settings_full"]
    first, second = tracked["runs"]
    assert first.sha256 == second.sha256  # the same data and seed give the same model file
    run_dir = settings.mlflow_artifacts_dir
    assert list(run_dir.rglob(MODEL_FILE)), "model.lgb not under the configured artifact root"
    pickles = [p for pattern in ("*.pkl", "*.pickle") for p in run_dir.rglob(pattern)]
    assert pickles == []
    assert not (Path.cwd() / "mlruns").exists()

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    booster = load_booster(first.model_uri, first.sha256)
    example = tracked["holdout"].head(50)
    np.testing.assert_array_equal(
        predict(booster, example, tracked["set"].features),
        predict(tracked["trained"].booster, example, tracked["set"].features),
    )
    model_info = mlflow.models.get_model_info(first.model_uri)
    assert model_info.signature is not None
    assert [c.name for c in model_info.signature.inputs.inputs] == tracked["set"].features
