"""Training: point-in-time training set from Feast, tracked training, the promotion gate (ML team).

LightGBM, scikit-learn and MLflow are imported by the steps that use them, not when the code location
loads: the webserver, the daemon and the sensors load the definitions about 2 s sooner (6-7 s instead of
8-9 s here), and a data-only run never imports them.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from dagster_project.resources import HybridopsResource
from dagster_project.retries import transient_retries
from hybridops.errors import HybridopsError
from hybridops.features.entities import arrow_string_types
from hybridops.features.store import feature_store
from hybridops.settings import Settings
from hybridops.training.dataset import build_training_set, labelled_flights
from hybridops.training.split import SplitPlan, plan_split, split_frame
from hybridops.warehouse.db import connect, read_frame

OWNERS = ["team:ml"]
# One training at a time on the instance (the limit is the instance's pool config): two would register
# candidates and move the champion alias against each other.
TRAINING_POOL = "training"


class TrainingConfig(dg.Config):
    """Set by the retraining loop; empty for a regular training run."""

    holdout_month: str | None = None
    trigger: str = "pipeline"


def training_set_path(settings: Settings, sha256: str) -> Path:
    return settings.home_dir / "ml" / "training_sets" / f"{sha256}.parquet"


def loaded_months(settings: Settings) -> list[str]:
    with connect(settings, read_only=True) as con:
        frame = read_frame(con, "select distinct month_key from fct_flights order by 1")
    return frame["month_key"].tolist()


def _plan(months: list[str], config: TrainingConfig, settings: Settings) -> SplitPlan:
    if not config.holdout_month:
        return plan_split(months, settings.training.train_months)
    if config.holdout_month not in months or config.holdout_month == months[0]:
        raise HybridopsError(
            f"holdout month {config.holdout_month} needs earlier loaded months to train on; loaded: {months}"
        )
    index = months.index(config.holdout_month)
    return SplitPlan(train=months[:index], holdout=months[index], score=months[index:])


@dg.asset(
    group_name="training",
    owners=OWNERS,
    pool=TRAINING_POOL,
    kinds={"feast", "parquet"},
    deps=["feature_tables", "feast_registry", "fct_flights"],
    description=(
        "Labelled flights (delay >= 15 min; cancelled flights excluded) joined point-in-time with the Feast "
        "features: the train months and the holdout month after them."
    ),
)
@transient_retries
def training_set(
    context: dg.AssetExecutionContext, config: TrainingConfig, hybridops: HybridopsResource
) -> dict:
    settings = hybridops.settings()
    plan = _plan(loaded_months(settings), config, settings)
    with connect(settings, read_only=True) as con:
        labelled = labelled_flights(con, [*plan.train, plan.holdout], settings.model.horizon_minutes)
    built = build_training_set(
        feature_store(settings), labelled.entities, settings.training, cache_dir=settings.feature_cache_dir
    )
    path = training_set_path(settings, built.sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    built.frame.to_parquet(path, index=False)
    context.add_output_metadata(
        {
            "rows": built.rows,
            "dagster/row_count": built.rows,
            "sha256": built.sha256,
            "train_months": ",".join(plan.train),
            "holdout_month": plan.holdout,
            "score_months": ",".join(plan.score),
            "cancelled_excluded": labelled.cancelled_excluded,
            "positive_rate": float(built.frame["label"].mean()),
            "trigger": config.trigger,
            **{f"null_rate_{name}": float(rate) for name, rate in built.null_rates.items()},
        }
    )
    return {
        "path": str(path),
        "sha256": built.sha256,
        "features": built.features,
        "feature_views": built.feature_views,
        "feature_view_digests": built.feature_view_digests,
        "null_rates": built.null_rates,
        "plan": {"train": plan.train, "holdout": plan.holdout, "score": plan.score},
        "cancelled_excluded": labelled.cancelled_excluded,
        "trigger": config.trigger,
    }


def _restore(ref: dict):
    from hybridops.training.dataset import TrainingSet

    # Strings as the training set held them (string[pyarrow]), not as Python objects.
    frame = pq.read_table(ref["path"]).to_pandas(types_mapper=arrow_string_types)
    plan = SplitPlan(**ref["plan"])
    training = TrainingSet(
        frame=frame,
        features=ref["features"],
        feature_views=ref["feature_views"],
        rows=len(frame),
        null_rates=ref["null_rates"],
        sha256=ref["sha256"],
        feature_view_digests=ref["feature_view_digests"],
    )
    return training, plan


@dg.asset(
    group_name="training",
    owners=OWNERS,
    pool=TRAINING_POOL,
    kinds={"lightgbm", "mlflow"},
    description=(
        "A LightGBM candidate trained on the train months, evaluated on the holdout, tracked in MLflow "
        "with its lineage and registered as the `challenger`."
    ),
)
@transient_retries
def candidate_model(
    context: dg.AssetExecutionContext, hybridops: HybridopsResource, training_set: dict
) -> dict:
    from hybridops.registry import register_candidate, registry_client
    from hybridops.training.baseline import train_baseline
    from hybridops.training.tracking import BASELINE_AUC_TAG, track_training
    from hybridops.training.train import train_model

    settings = hybridops.settings()
    training, plan = _restore(training_set)
    digest = training_digest(training_set["sha256"], plan, training.features, settings)
    existing = registered_version_for(settings, digest)
    if existing is not None:
        # Same training set, split, features and parameters: training is deterministic, so the model
        # would be the same; re-running must not register a duplicate version.
        context.add_output_metadata({"version": existing["version"], "reused": True, **existing["metrics"]})
        return {**existing, "training_set": training_set, "reused": True}
    train, holdout = split_frame(training.frame, plan)
    trained = train_model(train, holdout, training.features, settings.training)
    # The plain baseline on the same months and holdout flights: the gate's bar for the Feast features.
    with connect(settings, read_only=True) as con:
        baseline = train_baseline(con, plan, settings.training).holdout_metrics
    tracked = track_training(
        settings,
        training,
        plan,
        trained,
        {
            "dagster_run_id": context.run.run_id,
            "cancelled_excluded": str(training_set["cancelled_excluded"]),
            "trigger": training_set["trigger"],
            "training_digest": digest,
        },
        holdout=holdout,
        baseline=baseline,
    )
    version = register_candidate(
        settings,
        tracked.model_uri,
        tracked.run_id,
        tracked.sha256,
        description=f"trained on {','.join(plan.train)}, holdout {plan.holdout} ({training_set['trigger']})",
        actor="dagster",
        pipeline_run_id=context.run.run_id,
        fingerprint=digest,  # two runs racing on the same training register one version
    )
    # The baseline stands beside the version in the registry (model list, lineage).
    registry_client(settings).set_model_version_tag(
        settings.mlflow.model_name, version, BASELINE_AUC_TAG, f"{baseline.auc:.6f}"
    )
    metrics = trained.holdout_metrics
    context.add_output_metadata(
        {
            "version": version,
            "mlflow_run_id": tracked.run_id,
            "auc": metrics.auc,
            "baseline_auc": baseline.auc,
            "baseline_margin": metrics.auc - baseline.auc,
            "logloss": metrics.logloss,
            "brier": metrics.brier,
            "ece": metrics.ece,
            "holdout_rows": metrics.rows,
        }
    )
    return {
        "version": version,
        "run_id": tracked.run_id,
        "metrics": {
            "auc": metrics.auc,
            "logloss": metrics.logloss,
            "brier": metrics.brier,
            "baseline_auc": baseline.auc,
        },
        "training_set": training_set,
        "reused": False,
    }


def training_digest(training_set_sha: str, plan: SplitPlan, features: list[str], settings: Settings) -> str:
    """What determines the model: the data, the split, the features and every training parameter."""
    from hybridops.training.train import lgb_params

    payload = json.dumps(
        {
            "training_set": training_set_sha,
            "plan": [plan.train, plan.holdout],
            "features": features,
            "params": lgb_params(settings.training),
            "rounds": settings.training.num_boost_round,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def registered_version_for(settings: Settings, digest: str) -> dict | None:
    """The registered version already trained from exactly this digest, if any."""
    from hybridops.registry import registry_client

    client = registry_client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`hybridops.training_digest` = '{digest}'"
    )
    run_ids = {run.info.run_id: run for run in runs}
    if not run_ids:
        return None
    for version in client.search_model_versions(f"name = '{settings.mlflow.model_name}'"):
        if version.run_id in run_ids:
            metrics = run_ids[version.run_id].data.metrics
            found = {m: float(metrics[f"holdout_{m}"]) for m in ("auc", "logloss", "brier")}
            if "baseline.auc" in metrics:
                found["baseline_auc"] = float(metrics["baseline.auc"])
            return {"version": str(version.version), "run_id": version.run_id, "metrics": found}
    return None


@dg.asset(
    group_name="training",
    owners=OWNERS,
    pool=TRAINING_POOL,
    kinds={"mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            "champion_exists",
            asset="champion_model",
            blocking=True,
            description="A champion passed the gate: scoring needs one.",
        )
    ],
    description=(
        "The promotion gate: the candidate and the current champion scored on the same holdout; the "
        "candidate becomes `champion` only with a margin above the champion and above the floors."
    ),
)
@transient_retries
def champion_model(context: dg.AssetExecutionContext, hybridops: HybridopsResource, candidate_model: dict):
    from hybridops.registry import CHAMPION, apply_gate, champion, load_model
    from hybridops.training.train import evaluate

    settings = hybridops.settings()
    training, plan = _restore(candidate_model["training_set"])
    _, holdout = split_frame(training.frame, plan)
    current = champion(settings)
    if current is not None and current.version == candidate_model["version"]:
        yield dg.MaterializeResult(
            metadata={
                "model_name": settings.mlflow.model_name,
                "promoted": False,
                "reason": f"version {current.version} is already the champion (same data and parameters)",
                "candidate_version": candidate_model["version"],
                "champion_version": current.version,
                **{f"candidate_{k}": v for k, v in candidate_model["metrics"].items() if k != "baseline_auc"},
                "baseline_auc": candidate_model["metrics"].get("baseline_auc", float("nan")),
                "holdout_month": plan.holdout,
                "score_months": ",".join(plan.score),
            }
        )
        yield dg.AssetCheckResult(
            check_name="champion_exists", passed=True, description=f"champion is version {current.version}"
        )
        return
    champion_metrics = None
    if current is not None:
        loaded = load_model(settings, f"{settings.mlflow.model_name}@{CHAMPION}")
        measured = evaluate(loaded.booster, holdout, loaded.booster.feature_name())
        champion_metrics = {"auc": measured.auc, "logloss": measured.logloss, "brier": measured.brier}
    decision = apply_gate(
        settings,
        candidate_model["version"],
        candidate_model["metrics"],
        champion_metrics,
        actor="dagster",
        run_id=context.run.run_id,
    )
    now = champion(settings)
    metadata = {
        "model_name": settings.mlflow.model_name,
        "promoted": decision.promote,
        "reason": decision.reason,
        "candidate_version": candidate_model["version"],
        "champion_version": now.version if now else "none",
        "candidate_auc": candidate_model["metrics"]["auc"],
        "candidate_logloss": candidate_model["metrics"]["logloss"],
        "candidate_brier": candidate_model["metrics"]["brier"],
        "baseline_auc": candidate_model["metrics"].get("baseline_auc", float("nan")),
        "holdout_month": plan.holdout,
        "score_months": ",".join(plan.score),
    }
    if champion_metrics:
        metadata.update({f"previous_champion_{k}": v for k, v in champion_metrics.items()})
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="champion_exists",
        passed=now is not None,
        description=(
            f"champion is version {now.version}" if now else f"no model passed the gate: {decision.reason}"
        ),
    )
