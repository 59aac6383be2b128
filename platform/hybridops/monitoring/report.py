"""The monthly drift report, the retraining recommendation, and their warehouse tables.

Performance on the delayed labels is the primary signal. Retraining is recommended when

* **measured degradation**: the month's live ROC AUC (known outcomes only, see
  ``hybridops.monitoring.performance``) is more than ``monitoring.max_auc_drop`` below the champion's
  holdout AUC, or below the floor ``monitoring.min_live_auc``; a month without an AUC (no known
  outcomes yet, or a single class) never triggers these rules; or
* **importance-weighted drift**: the drifted features (against their learnt thresholds, see
  ``hybridops.monitoring.thresholds``) carry at least ``monitoring.drifted_importance_threshold`` of the
  champion's gain importance (``hybridops.monitoring.importance``): drift the model does not use is
  reported, not acted upon.

Prediction drift (PSI of the scores above ``monitoring.prediction_psi_threshold``) is reported, noted and
alerted on but does not trigger retraining by itself: a shifted score distribution with stable features
means the world changed in a way the model already reads.

Tables (each write replaces the month's rows, so re-runs never duplicate):

* ``drift_metrics``: ``month_key, feature, psi, ks_stat, ks_pvalue, drifted, run_id, psi_threshold,
  ks_threshold, importance`` (the feature's thresholds that month and its share of the gain importance).
* ``model_performance``: ``month_key, model_version, auc, logloss, brier, rows, holdout_auc, run_id`` (no
  row for a month without known outcomes; ``holdout_auc`` is the scoring champion's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from hybridops.monitoring.importance import drifted_importance, uniform_weights
from hybridops.settings import MonitoringSettings, Settings, monitoring_settings
from hybridops.warehouse.db import replace_rows

DRIFT_TABLE = "drift_metrics"
PERFORMANCE_TABLE = "model_performance"
DRIFT_COLUMNS = [
    "month_key",
    "feature",
    "psi",
    "ks_stat",
    "ks_pvalue",
    "drifted",
    "run_id",
    "psi_threshold",
    "ks_threshold",
    "importance",
]
PERFORMANCE_COLUMNS = [
    "month_key",
    "model_version",
    "auc",
    "logloss",
    "brier",
    "rows",
    "run_id",
    "holdout_auc",
]


@dataclass
class DriftReport:
    """One month's drift and performance, and whether to retrain (with the reasons)."""

    month_key: str
    features: list[dict[str, Any]]
    drifted_features: list[str]
    retrain_recommended: bool
    reasons: list[str]
    prediction: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    model_version: str | None = None
    notes: list[str] = field(default_factory=list)
    drifted_importance: float = 0.0
    holdout_auc: float | None = None
    degraded: bool = False  # the live AUC rules fired
    drift_triggered: bool = False  # the importance-weighted drift rule fired
    weights: dict[str, float] = field(default_factory=dict)

    @property
    def live_auc(self) -> float | None:
        return None if not self.performance else self.performance.get("auc")


def plain_value(value: Any) -> Any:
    """Plain Python scalars (numpy and nan -> float / None) for dict rows."""
    if isinstance(value, bool):
        return value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def drift_report(
    month_key: str,
    feature_drift_df: pd.DataFrame,
    prediction: dict[str, Any] | None,
    perf: dict[str, Any] | None,
    settings: MonitoringSettings | Settings,
    model_version: str | int | None = None,
    *,
    holdout_auc: float | None = None,
    weights: dict[str, float] | None = None,
    holdout_month: str | None = None,
) -> DriftReport:
    """Assemble the report of ``month_key`` and decide whether to recommend retraining.

    ``holdout_auc`` is the champion's AUC on its holdout month (no degradation rule without it);
    ``weights`` its features' gain shares (``hybridops.monitoring.importance.gain_weights``; without them
    every feature weighs the same). ``holdout_month`` is the month the champion was selected on: up to
    it nothing is recommended, since retraining would hold out the same month after the same training
    months and rebuild the champion.
    """
    config = monitoring_settings(settings)
    features = [
        {key: plain_value(value) for key, value in row.items()} for row in feature_drift_df.to_dict("records")
    ]
    drifted = [row["feature"] for row in features if row.get("drifted")]
    weights = weights if weights is not None else uniform_weights([row["feature"] for row in features])
    for row in features:
        row["importance"] = float(weights.get(row["feature"], 0.0))
    share = drifted_importance(feature_drift_df, weights) if len(feature_drift_df) else 0.0
    reasons: list[str] = []
    notes: list[str] = []
    auc = perf.get("auc") if perf else None
    degraded = False
    if auc is not None and holdout_auc is not None and holdout_auc - auc > config.max_auc_drop:
        degraded = True
        reasons.append(
            f"live ROC AUC {auc:.3f} is {holdout_auc - auc:.3f} below the champion's holdout AUC "
            f"{holdout_auc:.3f} (monitoring.max_auc_drop {config.max_auc_drop:.3f})"
        )
    if auc is not None and auc < config.min_live_auc:
        degraded = True
        reasons.append(f"live ROC AUC {auc:.3f} is below the floor {config.min_live_auc:.3f}")
    drift_triggered = bool(drifted) and share >= config.drifted_importance_threshold
    if drift_triggered:
        reasons.append(
            f"drifted features carry {share:.0%} of the champion's gain importance "
            f"(>= monitoring.drifted_importance_threshold {config.drifted_importance_threshold:.0%}): "
            + ", ".join(sorted(drifted, key=lambda name: -weights.get(name, 0.0)))
        )
    elif drifted:
        notes.append(
            f"{len(drifted)} feature(s) drifted carrying {share:.0%} of the gain importance: {', '.join(drifted)}"
        )
    if reasons and holdout_month is not None and month_key <= holdout_month:
        notes.append(
            f"not a retraining signal: {month_key} is the champion's own holdout month or earlier "
            f"({'; '.join(reasons)})"
        )
        reasons, degraded, drift_triggered = [], False, False
    if perf and perf.get("note"):
        notes.append(str(perf["note"]))
    if prediction and prediction.get("drifted"):
        notes.append(
            f"prediction drift: PSI {prediction.get('psi', math.nan):.3f}, "
            f"KS {prediction.get('ks_stat', math.nan):.3f}, "
            f"mean shift {prediction.get('mean_shift', math.nan):+.3f}"
        )
    version = model_version if model_version is not None else (perf or {}).get("model_version")
    return DriftReport(
        month_key=month_key,
        features=features,
        drifted_features=drifted,
        retrain_recommended=bool(reasons),
        reasons=reasons,
        prediction=prediction,
        performance=perf,
        model_version=None if version is None else str(version),
        notes=notes,
        drifted_importance=share,
        holdout_auc=holdout_auc,
        degraded=degraded,
        drift_triggered=drift_triggered,
        weights=dict(weights),
    )


def _drift_frame(report: DriftReport, run_id: str) -> pd.DataFrame:
    rows = report.features
    frame = pd.DataFrame(
        {
            "month_key": pd.Series([report.month_key] * len(rows), dtype="string"),
            "feature": pd.Series([row["feature"] for row in rows], dtype="string"),
            "psi": pd.Series([row.get("psi") for row in rows], dtype="float64"),
            "ks_stat": pd.Series([row.get("ks_stat") for row in rows], dtype="float64"),
            "ks_pvalue": pd.Series([row.get("ks_pvalue") for row in rows], dtype="float64"),
            "drifted": pd.Series([bool(row.get("drifted")) for row in rows], dtype="bool"),
            "run_id": pd.Series([run_id] * len(rows), dtype="string"),
            "psi_threshold": pd.Series([row.get("psi_threshold") for row in rows], dtype="float64"),
            "ks_threshold": pd.Series([row.get("ks_threshold") for row in rows], dtype="float64"),
            "importance": pd.Series([row.get("importance") for row in rows], dtype="float64"),
        }
    )
    return frame[DRIFT_COLUMNS]


def _performance_frame(report: DriftReport, run_id: str) -> pd.DataFrame:
    perf = report.performance
    records = [] if not perf or not perf.get("rows") else [perf]
    frame = pd.DataFrame(
        {
            "month_key": pd.Series([report.month_key] * len(records), dtype="string"),
            "model_version": pd.Series([report.model_version] * len(records), dtype="string"),
            "auc": pd.Series([p.get("auc") for p in records], dtype="float64"),
            "logloss": pd.Series([p.get("logloss") for p in records], dtype="float64"),
            "brier": pd.Series([p.get("brier") for p in records], dtype="float64"),
            "rows": pd.Series([p.get("rows") for p in records], dtype="int64"),
            "run_id": pd.Series([run_id] * len(records), dtype="string"),
            "holdout_auc": pd.Series([report.holdout_auc] * len(records), dtype="float64"),
        }
    )
    return frame[PERFORMANCE_COLUMNS]


def write_drift(con: duckdb.DuckDBPyConnection, report: DriftReport, run_id: str) -> dict[str, int]:
    """Replace the month's rows of ``drift_metrics`` and ``model_performance``; rows written per table."""
    where: dict[str, object] = {"month_key": report.month_key}
    return {
        DRIFT_TABLE: replace_rows(con, DRIFT_TABLE, _drift_frame(report, run_id), where=where),
        PERFORMANCE_TABLE: replace_rows(
            con, PERFORMANCE_TABLE, _performance_frame(report, run_id), where=where
        ),
    }
