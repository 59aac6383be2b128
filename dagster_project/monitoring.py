"""Batch inference with the champion, drift and live performance, and the retraining loop (ML team)."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from dagster_project.training import training_set_path
from hybridops.features.store import feature_store
from hybridops.inference.batch import score, score_month
from hybridops.monitoring.drift import feature_drift, prediction_drift
from hybridops.monitoring.loop import LoopDecision, collect_signals, decide, record_report
from hybridops.monitoring.performance import performance
from hybridops.monitoring.report import drift_report, write_drift
from hybridops.registry import CHAMPION, champion, load_model, registry_client
from hybridops.settings import Settings
from hybridops.warehouse.db import connect, read_frame, table_exists, write_parquet_partition

OWNERS = ["team:ml"]
RETRAIN_TAG = "hybridops/loop"
TRIGGER_KEY_TAG = "hybridops/trigger_key"


def scored_features_root(settings: Settings) -> Path:
    return settings.home_dir / "ml"


@dg.asset(
    group_name="inference",
    owners=OWNERS,
    kinds={"lightgbm", "duckdb"},
    partitions_def=monthly,
    deps=["champion_model", "feature_tables"],
    description=(
        "The month's flights scored by the champion with point-in-time Feast features; each prediction "
        "carries the model version that produced it (table `predictions`)."
    ),
)
def batch_predictions(
    context: dg.AssetExecutionContext, hybridops: HybridopsResource
) -> dg.MaterializeResult:
    settings = hybridops.settings()
    loaded = load_model(settings, f"{settings.mlflow.model_name}@{CHAMPION}")
    with connect(settings.warehouse_db) as con:
        result = score_month(
            con,
            feature_store(settings),
            loaded.booster,
            loaded.info.name,
            loaded.info.version,
            context.partition_key,
            context.run.run_id,
            cache_dir=settings.feature_cache_dir,
        )
    # The exact inputs the model saw, kept for drift and for auditing online/offline skew.
    write_parquet_partition(
        result.features, scored_features_root(settings), "scored_features", context.partition_key
    )
    return dg.MaterializeResult(
        metadata={
            "rows": result.rows,
            "dagster/row_count": result.rows,
            "model_version": loaded.info.version,
            "predicted_delay_rate": float(result.positive_rate),
            "mean_probability": float(result.predictions["delay_probability"].mean()),
        }
    )


@dg.asset(
    group_name="monitoring",
    owners=OWNERS,
    kinds={"duckdb"},
    partitions_def=monthly,
    deps=[batch_predictions],
    check_specs=[
        dg.AssetCheckSpec("feature_drift", asset="model_monitoring", description="PSI/KS per feature"),
        dg.AssetCheckSpec("live_performance", asset="model_monitoring", description="AUC on known outcomes"),
        dg.AssetCheckSpec("prediction_drift", asset="model_monitoring", description="PSI of the scores"),
    ],
    description=(
        "Per-feature drift (PSI and KS against the champion's training months), prediction drift against "
        "its holdout scores, and real performance once outcomes are known."
    ),
)
def model_monitoring(context: dg.AssetExecutionContext, hybridops: HybridopsResource):
    settings = hybridops.settings()
    month = context.partition_key
    loaded = load_model(settings, f"{settings.mlflow.model_name}@{CHAMPION}")
    features = loaded.booster.feature_name()
    reference, holdout = _reference(settings, loaded.info.run_id)
    current = pd.read_parquet(
        scored_features_root(settings) / "scored_features" / f"month_key={month}" / "data.parquet"
    )
    with connect(settings.warehouse_db) as con:
        predictions = read_frame(con, "select * from predictions where month_key = ?", [month])
        drift = feature_drift(reference, current, features, settings.monitoring)
        scores = prediction_drift(
            score(loaded.booster, holdout, features), predictions["delay_probability"], settings.monitoring
        )
        live = performance(predictions, current)
        report = drift_report(
            month, drift, scores, live, settings.monitoring, model_version=loaded.info.version
        )
        write_drift(con, report, context.run.run_id)
        record_report(con, report, context.run.run_id)

    metadata: dict = {"drifted_features": ", ".join(report.drifted_features) or "none"}
    for row in drift.itertuples():
        metadata[f"psi_{row.feature}"] = float(row.psi)
        metadata[f"ks_{row.feature}"] = float(row.ks_stat)
    metadata["prediction_psi"] = float(scores["psi"])
    if live.get("auc") is not None:
        metadata["live_auc"] = float(live["auc"])
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="feature_drift",
        passed=len(report.drifted_features) < settings.monitoring.min_drifted_features,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"drifted: {', '.join(report.drifted_features) or 'none'}",
        metadata={"drifted": len(report.drifted_features)},
    )
    auc = live.get("auc")
    yield dg.AssetCheckResult(
        check_name="live_performance",
        passed=auc is None or auc >= settings.monitoring.min_live_auc,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"live AUC {auc:.4f}" if auc is not None else (live.get("note") or "no known outcomes"),
    )
    yield dg.AssetCheckResult(
        check_name="prediction_drift",
        passed=not scores.get("drifted", False),
        severity=dg.AssetCheckSeverity.WARN,
        description=f"score PSI {scores['psi']:.4f}, mean shift {scores['mean_shift']:+.4f}",
    )


def _reference(settings: Settings, run_id: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The champion's training rows (drift reference) and holdout rows (prediction reference)."""
    # The registry's own client: no process-wide MLflow tracking URI is changed.
    run = registry_client(settings).get_run(run_id) if run_id else None
    tags = run.data.tags if run else {}
    sha = tags.get("hybridops.training_set_sha256")
    holdout_month = tags.get("hybridops.holdout_month")
    path = training_set_path(settings, str(sha))
    if not sha or not path.exists():
        raise dg.Failure(
            description=f"the champion's training set ({path}) is missing: retrain to restore it"
        )
    frame = pd.read_parquet(path)
    return frame[frame["month_key"] != holdout_month], frame[frame["month_key"] == holdout_month]


def evaluate_loop(
    instance: dg.DagsterInstance, settings: Settings, now: datetime | None = None
) -> LoopDecision:
    """Gather the loop's inputs from the warehouse, the registry and the instance's run history."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    current = champion(settings)
    if current is None:
        return LoopDecision(False, "no champion yet")
    with connect(settings.warehouse_db, read_only=True) as con:
        scored = (
            read_frame(
                con,
                "select distinct month_key from predictions where model_version = ? order by 1",
                [str(current.version)],
            )["month_key"].tolist()
            if table_exists(con, "predictions")
            else []
        )
        signals = collect_signals(con, settings.monitoring, current.version, scored)
    records = instance.get_run_records(dg.RunsFilter(tags={RETRAIN_TAG: "retrain"}))
    keys = {record.dagster_run.tags.get(TRIGGER_KEY_TAG, "") for record in records}
    last = max((record.create_timestamp for record in records), default=None)
    last_at = last.astimezone(UTC).replace(tzinfo=None) if last else None
    return decide(signals, current.version, last_at, keys, now, settings.monitoring)


def retrain_request(decision: LoopDecision) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=decision.trigger_key,
        run_config={
            "ops": {
                "training_set": {
                    "config": {"holdout_month": decision.holdout_month, "trigger": decision.why[:500]}
                }
            }
        },
        tags={RETRAIN_TAG: "retrain", TRIGGER_KEY_TAG: decision.trigger_key or ""},
    )


@dg.sensor(job_name="training", minimum_interval_seconds=300, description="Drift or SPC breach -> retraining")
def retrain_on_drift_or_spc(context: dg.SensorEvaluationContext, hybridops: HybridopsResource):
    decision = evaluate_loop(context.instance, hybridops.settings())
    if not decision.retrain:
        return dg.SkipReason(decision.why)
    return retrain_request(decision)


@dg.asset(
    group_name="monitoring",
    owners=["team:data", "team:ml"],
    kinds={"feast", "duckdb"},
    deps=["online_features"],
    check_specs=[
        dg.AssetCheckSpec(
            "online_offline_skew",
            asset="feature_skew_audit",
            description="Served feature values equal Feast's point-in-time recomputation",
        )
    ],
    description=(
        "The feature vectors sampled by the inference service, recomputed with Feast point-in-time "
        "retrieval at the event time of the online row they came from, and compared (table skew_audit)."
    ),
)
def feature_skew_audit(context: dg.AssetExecutionContext, hybridops: HybridopsResource):
    from hybridops.observability.skew import audit, read_feature_log, write_audit

    settings = hybridops.settings()
    served = read_feature_log(settings)
    report = audit(feature_store(settings), served)
    with connect(settings.warehouse_db) as con:
        write_audit(con, report, context.run.run_id, datetime.now(UTC).replace(tzinfo=None))
    compared, mismatches = int(report["compared"].sum()), int(report["mismatches"].sum())
    yield dg.MaterializeResult(
        metadata={"served_rows": len(served), "values_compared": compared, "mismatches": mismatches}
    )
    worst = report.sort_values("mismatches", ascending=False).head(3)
    yield dg.AssetCheckResult(
        check_name="online_offline_skew",
        passed=mismatches == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{mismatches} of {compared} served values differ from the offline store"
            + (
                ": " + ", ".join(f"{r.feature} ({r.mismatches})" for r in worst.itertuples() if r.mismatches)
                if mismatches
                else ""
            )
            if compared
            else "nothing served yet: the inference service logs a sample of what it serves"
        ),
        metadata={"compared": compared, "mismatches": mismatches},
    )
