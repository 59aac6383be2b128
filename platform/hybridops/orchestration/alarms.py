"""The alarms of a run's months, read back from the warehouse for the run summary.

Three kinds, one row per cause, each with the evidence an operator needs:

* ``spc``: the grouped SPC alarms of ``spc_alarms`` (one per cause: a storm's cancellations, delays and null
  rates together), dated by the day the alarm was raised;
* ``performance``: a scored month whose live AUC (delayed labels) fell below the champion's holdout AUC by
  more than ``monitoring.max_auc_drop`` (``drift_reports.degraded``);
* ``drift``: a scored month with drifted features (one alarm listing them: ERROR when they carry at least
  ``monitoring.drifted_importance_threshold`` of the champion's importance, WARN otherwise), and a month
  whose prediction PSI is over ``monitoring.prediction_psi_threshold``.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb

from hybridops.orchestration.summary import AlarmSummary
from hybridops.settings import MonitoringSettings
from hybridops.warehouse.db import read_frame, table_exists


def spc_alarms(con: duckdb.DuckDBPyConnection, months: list[str]) -> list[AlarmSummary]:
    if not table_exists(con, "spc_alarms"):
        return []
    frame = read_frame(
        con,
        "select month_key, cast(cast(day as date) as varchar) as day, severity, metrics, rules, evidence "
        "from spc_alarms where list_contains(?, month_key) order by day, metrics",
        [months],
    )
    return [
        AlarmSummary(
            kind="spc",
            metric=row["metrics"],
            rule=row["rules"],
            severity=row["severity"],
            month=row["month_key"],
            date=row["day"],
            evidence=row["evidence"],
        )
        for row in frame.to_dict(orient="records")
    ]


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def monitoring_alarms(
    con: duckdb.DuckDBPyConnection, months: list[str], settings: MonitoringSettings
) -> list[AlarmSummary]:
    if not table_exists(con, "drift_reports"):
        return []
    frame = read_frame(
        con,
        "select * from drift_reports where list_contains(?, month_key) order by month_key",
        [months],
    )
    alarms: list[AlarmSummary] = []
    for row in frame.to_dict(orient="records"):
        month = str(row["month_key"])
        live, holdout = _number(row.get("live_auc")), _number(row.get("holdout_auc"))
        if row.get("degraded") and live is not None and holdout is not None:
            alarms.append(
                AlarmSummary(
                    kind="performance",
                    metric="live_auc",
                    rule=f"live AUC < holdout AUC - {settings.max_auc_drop:g}",
                    severity="ERROR",
                    month=month,
                    evidence=f"live AUC {live:.3f} on delayed labels, holdout AUC {holdout:.3f}",
                )
            )
        drifted = [f for f in str(row.get("drifted_features") or "").split(",") if f.strip()]
        if drifted:
            share = _number(row.get("drifted_importance")) or 0.0
            alarms.append(
                AlarmSummary(
                    kind="drift",
                    metric="features",
                    rule=f"importance-weighted drift >= {settings.drifted_importance_threshold:g}"
                    if row.get("drift_triggered")
                    else "feature drift over its learnt threshold",
                    severity="ERROR" if row.get("drift_triggered") else "WARN",
                    month=month,
                    evidence=f"{len(drifted)} drifted ({', '.join(drifted)}), carrying {share:.0%} "
                    "of the champion's gain importance",
                )
            )
        psi = _number(row.get("prediction_psi"))
        if psi is not None and psi > settings.prediction_psi_threshold:
            alarms.append(
                AlarmSummary(
                    kind="drift",
                    metric="prediction_psi",
                    rule=f"prediction PSI > {settings.prediction_psi_threshold:g}",
                    severity="WARN",
                    month=month,
                    evidence=f"PSI of the score distribution {psi:.3f}",
                )
            )
    return alarms
