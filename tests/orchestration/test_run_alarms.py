"""The run summary's alarms, read back from a real warehouse: one per cause, with evidence."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hybridops.orchestration.alarms import monitoring_alarms, spc_alarms
from hybridops.settings import MonitoringSettings, Settings
from hybridops.warehouse.db import connect, replace_rows


def _report(month: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "month_key": month,
        "model_version": "1",
        "retrain_recommended": False,
        "drifted_features": "",
        "reasons": "",
        "run_id": "r",
        "drifted_importance": 0.0,
        "degraded": False,
        "drift_triggered": False,
        "live_auc": 0.73,
        "holdout_auc": 0.74,
        "prediction_psi": 0.01,
    }
    return {**row, **values}


def test_each_kind_of_alarm_names_its_month_rule_and_evidence(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    monitoring = MonitoringSettings(max_auc_drop=0.02, prediction_psi_threshold=0.25)
    reports = pd.DataFrame(
        [
            _report("2013-07"),  # quiet: no alarm
            _report("2013-08", drifted_features="temp,wind_speed", drifted_importance=0.03),
            _report(
                "2013-09",
                degraded=True,
                live_auc=0.684,
                holdout_auc=0.736,
                prediction_psi=1.6,
                drifted_features="temp",
                drifted_importance=0.6,
                drift_triggered=True,
            ),
            _report("2014-01", degraded=True),  # not one of the run's months
        ]
    )
    spc = pd.DataFrame(
        {
            "month_key": ["2013-02"],
            "alarm_id": ["storm:ERROR:2013-02-08"],
            "group": ["storm"],
            "day": pd.to_datetime(["2013-02-09"]),
            "start_day": pd.to_datetime(["2013-02-08"]),
            "end_day": pd.to_datetime(["2013-02-10"]),
            "severity": ["ERROR"],
            "metrics": ["cancellation_rate, dep_delay_mean"],
            "rules": ["rule1"],
            "evidence": ["cancellation_rate 0.52 > ucl 0.05"],
            "run_id": ["r"],
        }
    )
    months = ["2013-02", "2013-07", "2013-08", "2013-09"]
    with connect(settings) as con:
        replace_rows(con, "drift_reports", reports, {"month_key": list(reports["month_key"])})
        replace_rows(con, "spc_alarms", spc, {"month_key": ["2013-02"]})
        found = [*spc_alarms(con, months), *monitoring_alarms(con, months, monitoring)]

    got = [(a.kind, a.metric, a.severity, a.month, a.date) for a in found]
    assert got == [
        ("spc", "cancellation_rate, dep_delay_mean", "ERROR", "2013-02", "2013-02-09"),
        ("drift", "features", "WARN", "2013-08", None),
        ("performance", "live_auc", "ERROR", "2013-09", None),
        ("drift", "features", "ERROR", "2013-09", None),
        ("drift", "prediction_psi", "WARN", "2013-09", None),
    ]
    assert "0.684" in found[2].evidence and "0.736" in found[2].evidence
    assert "temp, wind_speed" in found[1].evidence and "3%" in found[1].evidence
    assert "1.600" in found[4].evidence and "0.25" in found[4].rule


def test_no_tables_no_alarms(tmp_path: Path) -> None:
    with connect(Settings(home=tmp_path)) as con:
        assert (
            spc_alarms(con, ["2013-01"]) == []
            and monitoring_alarms(con, ["2013-01"], MonitoringSettings()) == []
        )
