"""The retraining recommendation and the drift and performance tables."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from hybridops.monitoring.drift import feature_drift, prediction_drift
from hybridops.monitoring.report import drift_report, write_drift
from hybridops.settings import MonitoringSettings


def _drift(shifted: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    names = ["temp", "humid", "wind_speed", "visib"]
    reference = pd.DataFrame({name: rng.normal(0, 1, 2000) for name in names})
    current = pd.DataFrame({name: rng.normal(0, 1, 2000) for name in names})
    for name in shifted:
        current[name] += 3
    return feature_drift(reference, current, names, MonitoringSettings())


GOOD = {"auc": 0.72, "logloss": 0.5, "brier": 0.15, "rows": 100, "note": None}


def test_retrain_when_enough_features_drift() -> None:
    settings = MonitoringSettings(min_drifted_features=2)
    one = drift_report("2013-05", _drift(["temp"]), None, GOOD, settings)
    assert one.drifted_features == ["temp"] and not one.retrain_recommended and one.reasons == []
    two = drift_report("2013-05", _drift(["temp", "visib"]), None, GOOD, settings)
    assert two.drifted_features == ["temp", "visib"]
    assert two.retrain_recommended
    assert "2 features drifted" in two.reasons[0]
    assert two.features[0]["feature"] == "temp" and isinstance(two.features[0]["psi"], float)


def test_retrain_when_live_auc_falls_below_the_floor() -> None:
    settings = MonitoringSettings()
    assert settings.min_live_auc == 0.6
    weak = drift_report("2013-05", _drift([]), None, {**GOOD, "auc": 0.55}, settings)
    assert weak.retrain_recommended and "below the floor" in weak.reasons[0]
    unknown = drift_report(
        "2013-05", _drift([]), None, {**GOOD, "auc": None, "note": "single class"}, settings
    )
    assert not unknown.retrain_recommended and unknown.notes == ["single class"]


def test_prediction_drift_is_noted_not_a_trigger() -> None:
    rng = np.random.default_rng(1)
    prediction = prediction_drift(rng.beta(2, 8, 2000), rng.beta(5, 5, 2000), MonitoringSettings())
    report = drift_report("2013-05", _drift([]), prediction, GOOD, MonitoringSettings())
    assert prediction["drifted"] and not report.retrain_recommended
    assert report.notes and report.notes[0].startswith("prediction drift")


def test_write_drift_replaces_the_month(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        settings = MonitoringSettings()
        may = drift_report("2013-05", _drift(["temp"]), None, GOOD, settings, model_version=3)
        june = drift_report("2013-06", _drift([]), None, None, settings, model_version="3")
        assert write_drift(con, may, "run-1") == {"drift_metrics": 4, "model_performance": 1}
        assert write_drift(con, june, "run-1") == {"drift_metrics": 4, "model_performance": 0}
        write_drift(con, may, "run-2")  # re-run of May: replaced, not appended
        rows = con.execute(
            "select month_key, count(*), count(distinct run_id), max(run_id), sum(drifted::int) "
            "from drift_metrics group by month_key order by month_key"
        ).fetchall()
        assert rows == [("2013-05", 4, 1, "run-2", 1), ("2013-06", 4, 1, "run-1", 0)]
        perf = con.execute("select * from model_performance").df()
        assert len(perf) == 1
        row = perf.iloc[0]
        assert (row["month_key"], row["model_version"], row["rows"], row["run_id"]) == (
            "2013-05", "3", 100, "run-2",
        )  # fmt: skip
        assert row["auc"] == 0.72 and row["brier"] == 0.15
        columns = [c[0] for c in con.execute("describe drift_metrics").fetchall()]
        assert columns == ["month_key", "feature", "psi", "ks_stat", "ks_pvalue", "drifted", "run_id"]
    finally:
        con.close()
