"""The monthly drift report, the retraining recommendation, and their warehouse tables.

Retraining is recommended when either

* at least ``monitoring.min_drifted_features`` features drifted (PSI > ``psi_threshold`` or KS statistic >
  ``ks_threshold``, see ``hybridops.monitoring.drift``), or
* the month's live ROC AUC (known outcomes only, see ``hybridops.monitoring.performance``) is below
  ``monitoring.min_live_auc``. A month without an AUC (no known outcomes, or a single class) never
  triggers this rule.

Prediction drift is reported (and noted) but does not trigger retraining by itself: a shifted score
distribution with stable features means the world changed in a way the model already reads.

Tables (each write replaces the month's rows, so re-runs never duplicate):

* ``drift_metrics``: ``month_key, feature, psi, ks_stat, ks_pvalue, drifted, run_id``.
* ``model_performance``: ``month_key, model_version, auc, logloss, brier, rows, run_id`` (no row for a
  month without known outcomes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from hybridops.settings import MonitoringSettings, Settings, monitoring_settings
from hybridops.warehouse.db import replace_rows

DRIFT_TABLE = "drift_metrics"
PERFORMANCE_TABLE = "model_performance"
DRIFT_COLUMNS = ["month_key", "feature", "psi", "ks_stat", "ks_pvalue", "drifted", "run_id"]
PERFORMANCE_COLUMNS = ["month_key", "model_version", "auc", "logloss", "brier", "rows", "run_id"]


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


def _clean(value: Any) -> Any:
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
) -> DriftReport:
    """Assemble the report of ``month_key`` and decide whether to recommend retraining."""
    config = monitoring_settings(settings)
    features = [
        {key: _clean(value) for key, value in row.items()} for row in feature_drift_df.to_dict("records")
    ]
    drifted = [row["feature"] for row in features if row.get("drifted")]
    reasons: list[str] = []
    notes: list[str] = []
    if len(drifted) >= config.min_drifted_features:
        reasons.append(
            f"{len(drifted)} features drifted (>= {config.min_drifted_features}): {', '.join(drifted)}"
        )
    auc = perf.get("auc") if perf else None
    if auc is not None and auc < config.min_live_auc:
        reasons.append(f"live ROC AUC {auc:.3f} is below the floor {config.min_live_auc:.3f}")
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
