"""Batch inference with the champion, drift and live performance, and the retraining loop (ML team).

The ML libraries (LightGBM, scikit-learn, SciPy, MLflow) are imported by the steps that use them, as in
``dagster_project.training``.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from dagster_project.automation import default_status
from dagster_project.months import MONTHLY, months_of, observe_months
from dagster_project.resources import HybridopsResource
from dagster_project.retries import transient_retries
from dagster_project.training import training_set_path
from hybridops.features.store import feature_store
from hybridops.monitoring.loop import LoopDecision, collect_signals, decide, record_report
from hybridops.monitoring.report import drift_report, write_drift
from hybridops.settings import OrchestrationSettings, Settings
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
    **MONTHLY,
    deps=["champion_model", "feature_tables"],
    description=(
        "Each month's flights scored by the champion with point-in-time Feast features; each prediction "
        "carries the model version that produced it (table `predictions`). A range of months is one run; "
        "each month's figures are also recorded as an observation of its partition."
    ),
)
@transient_retries
def batch_predictions(
    context: dg.AssetExecutionContext, hybridops: HybridopsResource
) -> dg.MaterializeResult:
    from hybridops.inference.batch import score_months
    from hybridops.registry import CHAMPION, load_model

    settings = hybridops.settings()
    months = months_of(context)
    loaded = load_model(settings, f"{settings.mlflow.model_name}@{CHAMPION}")
    with connect(settings) as con:
        results = score_months(
            con,
            feature_store(settings),
            loaded.booster,
            loaded.info.name,
            loaded.info.version,
            months,
            context.run.run_id,
            cache_dir=settings.feature_cache_dir,
            horizon_minutes=settings.model.horizon_minutes,
        )
    per_month: dict[str, dict] = {}
    for month, result in results.items():
        # The exact inputs the model saw, kept for drift and for auditing online/offline skew.
        write_parquet_partition(result.features, scored_features_root(settings), "scored_features", month)
        per_month[month] = {
            "rows": result.rows,
            "dagster/row_count": result.rows,
            "model_version": loaded.info.version,
            "predicted_delay_rate": float(result.positive_rate),
            "mean_probability": float(result.predictions["delay_probability"].mean()),
        }
    return dg.MaterializeResult(metadata=_range_metadata(context, per_month))


def _range_metadata(context: dg.AssetExecutionContext, per_month: dict[str, dict]) -> dict:
    """The materialization's metadata: the month's for one month, a summary for a range (whose months'
    own figures are observations of their partitions)."""
    observe_months(context, per_month)
    if len(per_month) == 1:
        return next(iter(per_month.values()))
    return {"months": ",".join(per_month), "per_month": "one observation per partition"}


@dg.asset(
    group_name="monitoring",
    owners=OWNERS,
    kinds={"duckdb"},
    **MONTHLY,
    deps=[batch_predictions],
    check_specs=[
        dg.AssetCheckSpec(
            "feature_drift", asset="model_monitoring", description="Importance-weighted PSI/KS drift"
        ),
        dg.AssetCheckSpec(
            "live_performance", asset="model_monitoring", description="AUC on known outcomes vs holdout"
        ),
        dg.AssetCheckSpec("prediction_drift", asset="model_monitoring", description="PSI of the scores"),
    ],
    description=(
        "Per-feature drift (PSI and KS against the champion's training months, thresholds learnt from their "
        "month-to-month variation, weighted by the champion's gain importance), prediction drift against "
        "its holdout scores, and real performance once outcomes are known against the holdout AUC, per "
        "month (a range run records each month as an observation of its partition; each check names the "
        "months that failed)."
    ),
)
@transient_retries
def model_monitoring(context: dg.AssetExecutionContext, hybridops: HybridopsResource):
    from hybridops.inference.batch import score
    from hybridops.monitoring.drift import DriftReference, feature_drift, prediction_drift
    from hybridops.monitoring.importance import gain_weights
    from hybridops.monitoring.performance import performance
    from hybridops.monitoring.thresholds import learn_thresholds
    from hybridops.registry import CHAMPION, load_model

    settings = hybridops.settings()
    months = months_of(context)
    loaded = load_model(settings, f"{settings.mlflow.model_name}@{CHAMPION}")
    features = loaded.booster.feature_name()
    reference_frame, holdout, holdout_month = _reference(settings, loaded.info.run_id)
    # Prepared once for every month: bins, shares and sorted values of the champion's training months,
    # each feature's threshold learnt from their month-to-month variation, the features' gain shares.
    reference = DriftReference(reference_frame, features, settings.monitoring.bins)
    thresholds = learn_thresholds(reference, reference_frame, settings.monitoring)
    weights = gain_weights(loaded.booster)
    holdout_scores = score(loaded.booster, holdout, features)
    holdout_auc = loaded.info.metrics.get("holdout_auc")
    del reference_frame, holdout

    per_month: dict[str, dict] = {}
    failed: dict[str, list[str]] = {"feature_drift": [], "live_performance": [], "prediction_drift": []}
    details: dict[str, list[tuple[str, str]]] = {name: [] for name in failed}
    drifted_counts: dict[str, int] = {}
    with connect(settings) as con:
        for month in months:
            current = pd.read_parquet(
                scored_features_root(settings) / "scored_features" / f"month_key={month}" / "data.parquet"
            )
            predictions = read_frame(con, "select * from predictions where month_key = ?", [month])
            drift = feature_drift(reference, current, features, settings.monitoring, thresholds)
            scores = prediction_drift(holdout_scores, predictions["delay_probability"], settings.monitoring)
            live = performance(predictions, current)
            report = drift_report(
                month,
                drift,
                scores,
                live,
                settings.monitoring,
                model_version=loaded.info.version,
                holdout_auc=holdout_auc,
                weights=weights,
                holdout_month=holdout_month,
            )
            write_drift(con, report, context.run.run_id)
            record_report(con, report, context.run.run_id)

            metadata: dict = {
                "drifted_features": ", ".join(report.drifted_features) or "none",
                "drifted_importance": float(report.drifted_importance),
                "drift_thresholds": thresholds.source,
            }
            for row in drift.itertuples():
                metadata[f"psi_{row.feature}"] = float(row.psi)
                metadata[f"ks_{row.feature}"] = float(row.ks_stat)
            metadata["prediction_psi"] = float(scores["psi"])
            auc = live.get("auc")
            if auc is not None:
                metadata["live_auc"] = float(auc)
            if holdout_auc is not None:
                metadata["holdout_auc"] = float(holdout_auc)
            per_month[month] = metadata

            drifted = report.drifted_features
            drifted_counts[month] = len(drifted)
            details["feature_drift"].append(
                (
                    month,
                    f"drifted: {', '.join(drifted) or 'none'} "
                    f"({report.drifted_importance:.0%} of the gain importance)",
                )
            )
            if report.drift_triggered:
                failed["feature_drift"].append(month)
            details["live_performance"].append(
                (
                    month,
                    f"live AUC {auc:.4f} (holdout {holdout_auc:.4f})"
                    if auc is not None and holdout_auc is not None
                    else f"live AUC {auc:.4f}"
                    if auc is not None
                    else live.get("note") or "no known outcomes",
                )
            )
            if report.degraded:
                failed["live_performance"].append(month)
            details["prediction_drift"].append(
                (month, f"score PSI {scores['psi']:.4f}, mean shift {scores['mean_shift']:+.4f}")
            )
            if scores.get("drifted", False):
                failed["prediction_drift"].append(month)

    yield dg.MaterializeResult(metadata=_range_metadata(context, per_month))
    for check_name in ("feature_drift", "live_performance", "prediction_drift"):
        bad = failed[check_name]
        yield dg.AssetCheckResult(
            check_name=check_name,
            passed=not bad,
            severity=dg.AssetCheckSeverity.WARN,
            description=_check_description(bad, details[check_name]),
            metadata={"months": ",".join(months), "failed_months": ",".join(bad) or "none"}
            # drifted features: the month's count, or the most of any month of the range
            | ({"drifted": max(drifted_counts.values(), default=0)} if check_name == "feature_drift" else {}),
        )


def _check_description(failed: list[str], details: list[tuple[str, str]]) -> str:
    """A month's result as a one-month run states it; for a range, the failed months then each month's."""
    if len(details) == 1:
        return details[0][1]
    lead = f"failed in {', '.join(failed)}" if failed else "passed in every month"
    return f"{lead}. " + "; ".join(f"{month} {text}" for month, text in details)


def _reference(settings: Settings, run_id: str | None) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """The champion's training rows (drift reference), holdout rows (prediction reference) and holdout
    month."""
    from hybridops.registry import registry_client

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
    holdout = frame["month_key"] == holdout_month
    return frame[~holdout], frame[holdout], holdout_month


def evaluate_loop(
    instance: dg.DagsterInstance, settings: Settings, now: datetime | None = None
) -> LoopDecision:
    """Gather the loop's inputs from the warehouse, the registry and the instance's run history."""
    from hybridops.registry import champion

    now = now or datetime.now(UTC).replace(tzinfo=None)
    current = champion(settings)
    if current is None:
        return LoopDecision(False, "no champion yet")
    with connect(settings, read_only=True) as con:
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


def retrain_sensor(settings: OrchestrationSettings) -> dg.SensorDefinition:
    """The retraining loop: measured degradation, importance-weighted drift or (when configured) an SPC
    breach launches the training job (on by default)."""

    @dg.sensor(
        name="retrain_on_drift_or_spc",
        job_name="training",
        minimum_interval_seconds=max(300, settings.sensor_interval_seconds),
        default_status=default_status(settings),
        description="Drift or SPC breach -> retraining",
    )
    def retrain_on_drift_or_spc(context: dg.SensorEvaluationContext, hybridops: HybridopsResource):
        decision = evaluate_loop(context.instance, hybridops.settings())
        if not decision.retrain:
            return dg.SkipReason(decision.why)
        return retrain_request(decision)

    return retrain_on_drift_or_spc


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
@transient_retries
def feature_skew_audit(context: dg.AssetExecutionContext, hybridops: HybridopsResource):
    from hybridops.observability.skew import audit, read_feature_log, write_audit

    settings = hybridops.settings()
    served = read_feature_log(settings)
    report = audit(feature_store(settings), served)
    with connect(settings) as con:
        write_audit(con, report, context.run.run_id, datetime.now(UTC).replace(tzinfo=None))
    compared, mismatches = int(report["compared"].sum()), int(report["mismatches"].sum())
    yield dg.MaterializeResult(
        metadata={"served_rows": len(served), "values_compared": compared, "mismatches": mismatches}
    )
    worst = report.sort_values("mismatches", ascending=False).head(3)
    yield dg.AssetCheckResult(
        check_name="online_offline_skew",
        # Nothing compared is not a pass: a service whose log never reaches the audit (a pod-local folder)
        # would otherwise look perfectly consistent.
        passed=compared > 0 and mismatches == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{mismatches} of {compared} served values differ from the offline store"
            + (
                ": " + ", ".join(f"{r.feature} ({r.mismatches})" for r in worst.itertuples() if r.mismatches)
                if mismatches
                else ""
            )
            if compared
            else "no served row to compare: the inference service logs a sample of what it serves to "
            "<home>/serving/feature_log (serving.log_sample_rate); check that it runs and shares the data volume"
        ),
        metadata={"compared": compared, "mismatches": mismatches},
    )
