"""The closed loop: measured harm to the current champion turns into one retraining request.

Signals come from two places, both in the warehouse:

* ``drift_reports``: a scored month whose drift report recommends retraining (written by monitoring:
  live AUC below the champion's holdout AUC by ``monitoring.max_auc_drop``, or drifted features carrying
  ``monitoring.drifted_importance_threshold`` of its gain importance, see ``hybridops.monitoring.report``),
  counted only while the model it judged is still the champion;
* ``spc_violations``: an SPC rule breach (severity ERROR) on a metric named in
  ``monitoring.spc_trigger_metrics`` (none by default), in a month the champion scored.

The decision deduplicates (one request per champion version and latest signalling month) and honours a
cooldown since the last retraining run. The retraining run holds out the latest signalling month and
trains on every loaded month before it, then faces the same promotion gate as any candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from hybridops.monitoring.report import DriftReport, plain_value
from hybridops.settings import MonitoringSettings
from hybridops.warehouse.db import read_frame, replace_rows, table_exists

REPORTS_TABLE = "drift_reports"


@dataclass(frozen=True)
class RetrainSignal:
    month_key: str
    source: str  # "drift" or "spc"
    reason: str


@dataclass(frozen=True)
class LoopDecision:
    """What the loop decided, and why (also when it decided not to retrain)."""

    retrain: bool
    why: str
    trigger_key: str | None = None
    holdout_month: str | None = None
    signals: list[RetrainSignal] = field(default_factory=list)


def record_report(con: duckdb.DuckDBPyConnection, report: DriftReport, run_id: str) -> None:
    """Persist the month's retraining recommendation and its figures (replacing the month's row)."""
    prediction = report.prediction or {}
    frame = pd.DataFrame(
        [
            {
                "month_key": report.month_key,
                "model_version": str(report.model_version or ""),
                "retrain_recommended": bool(report.retrain_recommended),
                "drifted_features": ",".join(report.drifted_features),
                "reasons": "; ".join(report.reasons),
                "run_id": run_id,
                "drifted_importance": float(report.drifted_importance),
                "degraded": bool(report.degraded),
                "drift_triggered": bool(report.drift_triggered),
                "live_auc": plain_value(report.live_auc),
                "holdout_auc": plain_value(report.holdout_auc),
                "prediction_psi": plain_value(prediction.get("psi")),
            }
        ]
    ).astype({"live_auc": "float64", "holdout_auc": "float64", "prediction_psi": "float64"})
    replace_rows(con, REPORTS_TABLE, frame, {"month_key": report.month_key})


def collect_signals(
    con: duckdb.DuckDBPyConnection,
    settings: MonitoringSettings,
    champion_version: str,
    scored_months: list[str],
) -> list[RetrainSignal]:
    """Breaches that concern the current champion, oldest month first."""
    signals: list[RetrainSignal] = []
    if table_exists(con, REPORTS_TABLE):
        drift = read_frame(
            con,
            f"select month_key, reasons from {REPORTS_TABLE} "
            "where retrain_recommended and model_version = ? order by month_key",
            [str(champion_version)],
        )
        signals += [RetrainSignal(r.month_key, "drift", r.reasons) for r in drift.itertuples()]
    if table_exists(con, "spc_violations") and settings.spc_trigger_metrics and scored_months:
        spc = read_frame(
            con,
            "select month_key, metric, count(*) as n from spc_violations "
            "where severity = 'ERROR' and list_contains(?, metric) and list_contains(?, month_key) "
            "group by 1, 2 order by 1, 2",
            [list(settings.spc_trigger_metrics), list(scored_months)],
        )
        signals += [
            RetrainSignal(r.month_key, "spc", f"{r.n} SPC ERROR violation(s) of {r.metric}")
            for r in spc.itertuples()
        ]
    return sorted(signals, key=lambda s: (s.month_key, s.source))


def decide(
    signals: list[RetrainSignal],
    champion_version: str,
    last_retrain_at: datetime | None,
    requested_keys: set[str],
    now: datetime,
    settings: MonitoringSettings,
) -> LoopDecision:
    """Turn signals into at most one retraining request."""
    if not signals:
        return LoopDecision(False, "no drift or SPC breach concerns the champion")
    latest = max(signal.month_key for signal in signals)
    key = f"{champion_version}:{latest}"
    if key in requested_keys:
        return LoopDecision(False, f"retraining for {key} was already requested", key, latest, signals)
    cooldown = timedelta(hours=settings.retrain_cooldown_hours)
    if last_retrain_at is not None and now - last_retrain_at < cooldown:
        wait = cooldown - (now - last_retrain_at)
        return LoopDecision(False, f"cooldown: next retraining allowed in {wait}", key, latest, signals)
    reasons = "; ".join(f"{s.month_key} {s.source}: {s.reason}" for s in signals if s.month_key == latest)
    return LoopDecision(True, f"retrain holding out {latest}: {reasons}", key, latest, signals)
