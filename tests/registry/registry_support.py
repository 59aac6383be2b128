"""Helpers of the registry tests: synthetic data, small real LightGBM boosters logged to a real MLflow store.

A module with a unique name (not conftest) so test modules import it unambiguously.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from hybridops.modeling.artifact import LoggedModel, log_booster
from hybridops.registry.client import registry_client
from hybridops.settings import Settings

EXPERIMENT = "registry-tests"
FEATURES = ["signal", "weak", "noise"]


@dataclass(frozen=True)
class Trained:
    booster: lgb.Booster
    logged: LoggedModel
    metrics: dict[str, float]  # on the shared holdout


def synthetic(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    logit = 1.5 * x["signal"] + 1.5 * x["weak"]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y.to_numpy()


HOLDOUT = synthetic(400, seed=99)


@contextmanager
def fast_logging() -> Iterator[None]:
    """Skip MLflow's pip-requirements inference (a subprocess of seconds per model); the files are the same."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlflow.models, "infer_pip_requirements", lambda *args, fallback=None, **kw: fallback)
        yield


def train_and_log(settings: Settings, features: list[str], seed: int, rounds: int = 20) -> Trained:
    """Train a small booster on ``features`` only (the others zeroed) and log it in a new run."""
    x, y = synthetic(400, seed)
    x = x.copy()
    for column in FEATURES:
        if column not in features:
            x[column] = 0.0
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "learning_rate": 0.1, "verbose": -1, "seed": seed},
        lgb.Dataset(x, label=y),
        num_boost_round=rounds,
    )
    hx, hy = HOLDOUT
    scores = booster.predict(hx)
    metrics = {"auc": float(roc_auc_score(hy, scores)), "brier": float(brier_score_loss(hy, scores))}
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with fast_logging(), mlflow.start_run(experiment_id=settings_experiment(settings)):
        mlflow.log_metrics(metrics)
        logged = log_booster(booster, input_example=x.head(3))
    return Trained(booster=booster, logged=logged, metrics=metrics)


def settings_experiment(settings: Settings) -> str:
    client = registry_client(settings)
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return found.experiment_id
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(EXPERIMENT, artifact_location=settings.mlflow_artifacts_dir.as_uri())
