"""A finished run's results folded into the :class:`~hybridops.orchestration.summary.RunSummary`.

Materialization metadata (rows, quarantine, features, the model and its gate), each month's drift
observation, check evaluations (what blocked) and step failures (the error the step's own code raised,
under Dagster's wrappers), and the step seconds by stage.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Protocol

from hybridops.orchestration.run_plan import PlannedRun
from hybridops.orchestration.summary import (
    BaselineSummary,
    CheckSummary,
    DriftSummary,
    ModelSummary,
    RunSummary,
)
from hybridops.quality.combine import NOT_EVALUATED

if TYPE_CHECKING:
    import dagster as dg


def _collect(
    summary: RunSummary,
    result: dg.ExecuteInProcessResult,
    planned: PlannedRun,
    instance: dg.DagsterInstance,
    stage_of: dict[str, str],
    blocking: set[tuple[dg.AssetKey, str]],
) -> None:
    summary.run_ids.append(result.run_id)
    trigger = "pipeline"
    counted: set[dg.AssetKey] = set()
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        if materialization.asset_key in counted:
            continue  # a range run repeats the step's totals on every partition's materialization
        counted.add(materialization.asset_key)
        metadata: dict[str, Any] = {key: value.value for key, value in materialization.metadata.items()}
        summary.rows_ingested += int(metadata.get("rows_read", 0) or 0)
        quarantined = int(metadata.get("rows_quarantined", 0) or 0)
        if quarantined:
            table = materialization.asset_key.to_user_string()
            summary.quarantined_by_table[table] = summary.quarantined_by_table.get(table, 0) + quarantined
            summary.rows_quarantined += quarantined
        summary.features_materialized += int(metadata.get("features_materialized", 0) or 0)
        summary.warehouse_rows += int(metadata.get("warehouse_rows", 0) or 0)
        if "report_html" in metadata:
            summary.report_path = str(metadata["report_html"])
        asset = materialization.asset_key.to_user_string()
        if asset == "training_set":
            trigger = str(metadata.get("trigger", "pipeline"))
        elif asset == "champion_model":
            if planned.tags.get("hybridops/loop") == "retrain":
                summary.drift.retrain_model = _model_summary(metadata, trigger)
            else:
                summary.model = _model_summary(metadata, trigger)

    # Monitoring records each month's drift and live performance as an observation of its partition
    # (a range run gives every partition's materialization the same metadata).
    for event in result.get_asset_observation_events():
        observation = event.event_specific_data.asset_observation  # type: ignore[union-attr]
        if observation.asset_key.to_user_string() == "model_monitoring" and observation.partition:
            metadata = {key: value.value for key, value in observation.metadata.items()}
            _fold_drift(summary.drift, observation.partition, metadata)

    for evaluation in result.get_asset_check_evaluations():
        check = CheckSummary(
            asset=evaluation.asset_key.to_user_string(),
            name=evaluation.check_name,
            passed=evaluation.passed,
            severity="ERROR" if evaluation.severity.value == "ERROR" else "WARN",
            partition=planned.partitions,
            blocking=(evaluation.asset_key, evaluation.check_name) in blocking,
            message=evaluation.description or "",
            evaluated=not (evaluation.description or "").startswith(NOT_EVALUATED),
        )
        summary.checks.append(check)
        # Dagster blocks downstream only on ERROR; a WARN result of a blocking check is informational.
        if check.blocking and not check.passed and check.severity == "ERROR":
            summary.status = "blocked"
            where = f" ({planned.partitions})" if planned.partitions else ""
            summary.problems.append(f"{check.asset}.{check.name}{where}: {check.message or 'failed'}")

    if not result.success and summary.status == "success":
        summary.status = "failed"
    for failure in result.get_step_failure_events():
        data = failure.step_failure_data
        if data.error and data.error.cls_name == "DagsterAssetCheckFailedError":
            continue  # the failing blocking check is already reported, with its own message
        message = (data.user_failure_data.description if data.user_failure_data else None) or (
            step_error_text(data.error) if data.error else "step failed"
        )
        summary.problems.append(f"{failure.step_key}: {message}")

    seconds: dict[str, float] = defaultdict(float)
    for stats in instance.get_run_step_stats(result.run_id):
        if stats.start_time and stats.end_time:
            seconds[stage_of.get(stats.step_key, "other")] += stats.end_time - stats.start_time
    for stage, value in seconds.items():
        summary.stage_seconds[stage] = round(summary.stage_seconds.get(stage, 0.0) + value, 3)


# Dagster's wrappers around the error a step raised: their own message only says which op failed.
_WRAPPERS = frozenset({"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"})


class ErrorInfo(Protocol):
    """What the runner reads of Dagster's serialized step error."""

    @property
    def cls_name(self) -> str | None: ...
    @property
    def message(self) -> str: ...
    @property
    def cause(self) -> ErrorInfo | None: ...


def step_error_text(error: ErrorInfo) -> str:
    """The first line of the error the step's own code raised, under Dagster's wrappers.

    ``Error occurred while executing op "feast_registry"`` tells a user nothing; the cause does
    (``sqlalchemy.exc.OperationalError: ... table stream_feature_views already exists``).
    """
    while error.cls_name in _WRAPPERS and error.cause is not None:
        error = error.cause
    lines = [line for line in error.message.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else error.cls_name or "step failed"


def _model_summary(metadata: dict[str, Any], trigger: str) -> ModelSummary:
    def metrics(prefix: str) -> dict[str, float]:
        return {
            m: float(metadata[f"{prefix}{m}"])
            for m in ("auc", "logloss", "brier")
            if f"{prefix}{m}" in metadata
        }

    promoted = bool(metadata.get("promoted"))
    champion = str(metadata.get("champion_version", "none"))
    candidate = metrics("candidate_")
    baseline = None
    baseline_auc = float(metadata.get("baseline_auc", math.nan))
    if math.isfinite(baseline_auc):
        margin = candidate["auc"] - baseline_auc if "auc" in candidate else None
        baseline = BaselineSummary(metrics={"auc": baseline_auc}, margin=margin)
    return ModelSummary(
        name=str(metadata.get("model_name", "")),
        version=None if champion == "none" else champion,
        # The champion's metrics on this holdout: the candidate's when promoted, else the measured incumbent.
        metrics=candidate if promoted else (metrics("previous_champion_") or candidate),
        promoted=promoted,
        reason=str(metadata.get("reason", "")),
        candidate_version=str(metadata.get("candidate_version", "")),
        candidate_metrics=candidate,
        holdout_month=str(metadata.get("holdout_month", "")),
        score_months=[m for m in str(metadata.get("score_months", "")).split(",") if m],
        trigger=trigger,
        baseline=baseline,
    )


def _fold_drift(drift: DriftSummary, month: str, metadata: dict[str, Any]) -> None:
    features: dict[str, dict[str, float]] = {}
    for key, value in metadata.items():
        for prefix in ("psi_", "ks_"):
            if key.startswith(prefix):
                features.setdefault(key[len(prefix) :], {})[prefix[:-1]] = float(value)
    drift.features[month] = features
    drifted = str(metadata.get("drifted_features", "none"))
    drift.drifted[month] = [] if drifted == "none" else [f.strip() for f in drifted.split(",")]
    if "prediction_psi" in metadata:
        drift.prediction_psi[month] = float(metadata["prediction_psi"])
    if "live_auc" in metadata:
        drift.live_auc[month] = float(metadata["live_auc"])
