"""One MLflow run per training: parameters, metrics, evaluation artifacts, lineage tags and the model.

The tracking store is ``settings.mlflow_tracking_uri`` (SQLite under ``<home>/mlflow`` by default). The
experiment ``settings.mlflow.experiment`` is created on first use with its artifact root at
``settings.mlflow_artifacts_dir``, so artifacts never land in the working directory.

Logged per run:

* params: every LightGBM parameter, ``num_boost_round``, ``train_months``, ``holdout_month``,
  ``score_months``, ``n_features``;
* metrics (one batch): ``holdout_{auc,logloss,brier,ece,rows,positive_rate}`` and the same for ``train_``;
  with the plain baseline (``hybridops.training.baseline``) measured on the same holdout, also
  ``baseline.{auc,logloss,brier}`` and ``baseline.margin`` (the model's holdout AUC minus the baseline's),
  and the tag ``hybridops.baseline_auc``;
* artifacts: ``evaluation/calibration.json`` and ``.csv`` (holdout reliability table),
  ``evaluation/reliability.png`` (reliability diagram), ``evaluation/training_set.json`` (features, null
  rates, feature-view versions);
* tags: ``hybridops.train_months``, ``hybridops.holdout_month``, ``hybridops.rows_train``,
  ``hybridops.rows_holdout``, ``hybridops.training_set_sha256``, ``hybridops.feature_views``
  (``name:version`` list), ``hybridops.feature_view_digests``, ``hybridops.git_commit``,
  ``hybridops.dagster_run_id`` and every ``lineage`` entry (keys without a ``hybridops.`` prefix get one);
* the model: a native LightGBM ``model.lgb`` via ``hybridops.modeling.artifact.log_booster`` (never a
  pickle), with the file's sha256 as tag ``hybridops.model_sha256``.
"""

from __future__ import annotations

import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from matplotlib.figure import Figure
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from hybridops.modeling.artifact import log_booster
from hybridops.registry.artifact_guard import tracking_server
from hybridops.registry.store_template import ensure_local_store
from hybridops.settings import Settings
from hybridops.training.dataset import TrainingSet
from hybridops.training.split import SplitPlan
from hybridops.training.train import Metrics, TrainedModel, predict

TAG_PREFIX = "hybridops."


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    model_uri: str
    sha256: str  # of the model file
    metrics: dict[str, float]
    params: dict[str, str]
    experiment_id: str = ""


def git_commit() -> str:
    """``git rev-parse HEAD`` of the source checkout, else the image's ``HYBRIDOPS_GIT_COMMIT`` (set from the
    ``GIT_COMMIT`` build argument of docker/*.Dockerfile), else ``unknown``."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        commit = result.stdout.strip() if result.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or os.environ.get("HYBRIDOPS_GIT_COMMIT", "").strip() or "unknown"


def ensure_experiment(settings: Settings) -> str:
    """Point MLflow at the configured store and return the experiment id (created if missing)."""
    ensure_local_store(settings)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    name = settings.mlflow.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        if tracking_server(settings):
            # A tracking server keeps the files in its own artifact store (mlflow-artifacts:/ through its
            # proxy); a path on this machine (a run pod's disk) is what the model loader refuses to read.
            return client.create_experiment(name)
        settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
        return client.create_experiment(name, artifact_location=settings.mlflow_artifacts_dir.as_uri())
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def run_params(training_set: TrainingSet, plan: SplitPlan, trained: TrainedModel) -> dict[str, str]:
    params: dict[str, Any] = {
        **trained.params,
        "num_boost_round": trained.num_boost_round,
        "train_months": ",".join(plan.train),
        "holdout_month": plan.holdout,
        "score_months": ",".join(plan.score),
        "n_features": len(trained.features),
    }
    return {key: str(value) for key, value in params.items()}


def run_metrics(trained: TrainedModel) -> dict[str, float]:
    return {**trained.holdout_metrics.as_dict("holdout_"), **trained.train_metrics.as_dict("train_")}


BASELINE_AUC_TAG = "hybridops.baseline_auc"


def baseline_metrics(trained: TrainedModel, baseline: Metrics) -> dict[str, float]:
    """The plain baseline's holdout metrics and the model's AUC margin over it (``baseline.*``)."""
    return {
        "baseline.auc": baseline.auc,
        "baseline.logloss": baseline.logloss,
        "baseline.brier": baseline.brier,
        "baseline.margin": trained.holdout_metrics.auc - baseline.auc,
    }


def lineage_tags(
    training_set: TrainingSet, plan: SplitPlan, trained: TrainedModel, lineage: dict[str, str]
) -> dict[str, str]:
    tags = {
        "hybridops.train_months": ",".join(plan.train),
        "hybridops.holdout_month": plan.holdout,
        "hybridops.score_months": ",".join(plan.score),
        "hybridops.rows_train": str(trained.train_metrics.rows),
        "hybridops.rows_holdout": str(trained.holdout_metrics.rows),
        "hybridops.training_set_sha256": training_set.sha256,
        "hybridops.training_set_rows": str(training_set.rows),
        "hybridops.feature_views": ",".join(
            f"{name}:{version}" for name, version in sorted(training_set.feature_views.items())
        ),
        "hybridops.feature_view_digests": ",".join(
            f"{name}:{digest}" for name, digest in sorted(training_set.feature_view_digests.items())
        ),
        "hybridops.git_commit": git_commit(),
        "hybridops.dagster_run_id": "none",
    }
    for key, value in lineage.items():
        tags[key if key.startswith(TAG_PREFIX) else TAG_PREFIX + key] = str(value)
    return tags


def calibration_frame(metrics: Metrics) -> pd.DataFrame:
    return pd.DataFrame(metrics.calibration, columns=["mean_predicted", "observed_rate", "count"])


def reliability_figure(metrics: Metrics, title: str) -> Figure:
    """Reliability diagram: observed delay rate against mean predicted probability per bin."""
    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    table = calibration_frame(metrics)
    axes.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="model")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean predicted delay probability")
    axes.set_ylabel("observed delay rate")
    auc = "n/a" if math.isnan(metrics.auc) else f"{metrics.auc:.3f}"
    axes.set_title(f"{title} (AUC {auc}, ECE {metrics.ece:.3f})")
    axes.legend(loc="upper left")
    return figure


def track_training(
    settings: Settings,
    training_set: TrainingSet,
    plan: SplitPlan,
    trained: TrainedModel,
    lineage: dict[str, str],
    holdout: pd.DataFrame | None = None,
    baseline: Metrics | None = None,
) -> TrackedRun:
    """Log one training run to MLflow (see the module docstring) and return its ids and metrics.

    ``holdout`` (the holdout rows) provides the model's input example and signature; by default it is taken
    from ``training_set.frame`` by ``plan.holdout``.
    """
    experiment_id = ensure_experiment(settings)
    features = trained.features
    if holdout is None:
        holdout = training_set.frame[training_set.frame["month_key"] == plan.holdout]
    example = holdout[features].head(5).astype("float64").reset_index(drop=True)
    signature = infer_signature(example, predict(trained.booster, example, features))
    params = run_params(training_set, plan, trained)
    metrics = run_metrics(trained)
    tags = lineage_tags(training_set, plan, trained, lineage)
    if baseline is not None:
        metrics.update(baseline_metrics(trained, baseline))
        tags[BASELINE_AUC_TAG] = f"{baseline.auc:.6f}"
    summary = {
        "rows": training_set.rows,
        "sha256": training_set.sha256,
        "features": training_set.features,
        "null_rates": training_set.null_rates,
        "feature_views": training_set.feature_views,
        "feature_view_digests": training_set.feature_view_digests,
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{plan.holdout}") as run:
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        table = calibration_frame(trained.holdout_metrics)
        mlflow.log_dict({"bins": table.to_dict(orient="records")}, "evaluation/calibration.json")
        mlflow.log_text(table.to_csv(index=False), "evaluation/calibration.csv")
        mlflow.log_dict(summary, "evaluation/training_set.json")
        mlflow.log_figure(
            reliability_figure(trained.holdout_metrics, f"holdout {plan.holdout}"),
            "evaluation/reliability.png",
        )
        logged = log_booster(trained.booster, input_example=example, signature=signature)
        run_id = run.info.run_id
    return TrackedRun(
        run_id=run_id,
        model_uri=logged.model_uri,
        sha256=logged.sha256,
        metrics=metrics,
        params=params,
        experiment_id=experiment_id,
    )
