"""The retraining loop's decision: signals, deduplication, cooldown."""

from datetime import datetime, timedelta

import pandas as pd

from hybridops.monitoring.loop import RetrainSignal, collect_signals, decide, record_report
from hybridops.monitoring.report import DriftReport
from hybridops.settings import MonitoringSettings
from hybridops.warehouse.db import connect, replace_rows

NOW = datetime(2026, 1, 1, 12, 0)
SETTINGS = MonitoringSettings(retrain_cooldown_hours=24, spc_trigger_metrics=["dep_delay_mean"])


def _report(month: str, version: str, recommended: bool) -> DriftReport:
    return DriftReport(
        month_key=month,
        features=[],
        drifted_features=["temp", "dewp"] if recommended else [],
        retrain_recommended=recommended,
        reasons=["2 features drifted: temp, dewp"] if recommended else [],
        model_version=version,
    )


def test_signals_concern_only_the_current_champion_and_scored_months(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        record_report(con, _report("2013-07", "1", True), "r1")
        record_report(con, _report("2013-08", "1", False), "r1")
        record_report(con, _report("2013-09", "2", True), "r2")
        record_report(con, _report("2013-09", "2", True), "r3")  # re-run replaces, never duplicates
        violations = pd.DataFrame(
            {
                "month_key": ["2013-02", "2013-08", "2013-08", "2013-08"],
                "metric": ["dep_delay_mean", "dep_delay_mean", "weather_temp_mean", "dep_delay_mean"],
                "severity": ["ERROR", "ERROR", "ERROR", "WARN"],
            }
        )
        replace_rows(con, "spc_violations", violations)
        signals = collect_signals(con, SETTINGS, "1", ["2013-07", "2013-08"])
    assert signals == [
        RetrainSignal("2013-07", "drift", "2 features drifted: temp, dewp"),
        RetrainSignal("2013-08", "spc", "1 SPC ERROR violation(s) of dep_delay_mean"),
    ]


def test_decide_requests_once_per_champion_and_month():
    signals = [RetrainSignal("2013-07", "drift", "x"), RetrainSignal("2013-08", "spc", "y")]
    first = decide(signals, "1", None, set(), NOW, SETTINGS)
    assert first.retrain and first.holdout_month == "2013-08" and first.trigger_key == "1:2013-08"
    assert "2013-08 spc: y" in first.why and "2013-07" not in first.why
    again = decide(signals, "1", None, {"1:2013-08"}, NOW, SETTINGS)
    assert not again.retrain and "already requested" in again.why


def test_cooldown_holds_back_a_new_request():
    signals = [RetrainSignal("2013-09", "drift", "x")]
    held = decide(signals, "2", NOW - timedelta(hours=23), set(), NOW, SETTINGS)
    assert not held.retrain and held.why.startswith("cooldown")
    allowed = decide(signals, "2", NOW - timedelta(hours=25), set(), NOW, SETTINGS)
    assert allowed.retrain


def test_no_signal_no_retraining():
    decision = decide([], "1", None, set(), NOW, SETTINGS)
    assert not decision.retrain and decision.trigger_key is None
