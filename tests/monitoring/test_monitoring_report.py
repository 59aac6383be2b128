"""The retraining recommendation and the drift and performance tables."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

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


def test_retrain_when_the_drifted_features_carry_enough_importance() -> None:
    settings = MonitoringSettings(drifted_importance_threshold=0.3)
    weights = {"temp": 0.05, "humid": 0.6, "wind_speed": 0.3, "visib": 0.05}
    # two drifted features the model barely uses: reported, not acted upon
    minor = drift_report("2013-05", _drift(["temp", "visib"]), None, GOOD, settings, weights=weights)
    assert minor.drifted_features == ["temp", "visib"] and minor.drifted_importance == pytest.approx(0.1)
    assert not minor.retrain_recommended and minor.reasons == [] and "10% of the gain" in minor.notes[0]
    # one drifted feature carrying 60% of the gain is enough
    major = drift_report("2013-05", _drift(["humid"]), None, GOOD, settings, weights=weights)
    assert major.retrain_recommended and major.drift_triggered and not major.degraded
    assert major.drifted_importance == pytest.approx(0.6) and "60% of the champion's gain" in major.reasons[0]
    assert major.features[1]["feature"] == "humid" and major.features[1]["importance"] == 0.6
    # without importances every feature weighs the same: 2 of 4 features = 50%
    uniform = drift_report("2013-05", _drift(["temp", "visib"]), None, GOOD, settings)
    assert uniform.drifted_importance == pytest.approx(0.5) and uniform.retrain_recommended


def test_retrain_when_live_auc_falls_below_the_holdout_auc_by_the_margin() -> None:
    settings = MonitoringSettings(max_auc_drop=0.02)
    within = drift_report("2013-09", _drift([]), None, {**GOOD, "auc": 0.72}, settings, holdout_auc=0.735)
    assert not within.retrain_recommended and within.live_auc == 0.72
    worse = drift_report("2013-09", _drift([]), None, {**GOOD, "auc": 0.684}, settings, holdout_auc=0.736)
    assert worse.retrain_recommended and worse.degraded and not worse.drift_triggered
    assert worse.reasons == [
        "live ROC AUC 0.684 is 0.052 below the champion's holdout AUC 0.736 (monitoring.max_auc_drop 0.020)"
    ]
    # without the champion's holdout AUC only the floor applies
    unknown = drift_report("2013-09", _drift([]), None, {**GOOD, "auc": 0.684}, settings)
    assert not unknown.retrain_recommended


def test_nothing_is_recommended_up_to_the_champions_holdout_month() -> None:
    settings = MonitoringSettings()
    args = (_drift(["temp", "humid", "visib"]), None, {**GOOD, "auc": 0.65})
    holdout = drift_report("2013-07", *args, settings, holdout_auc=0.74, holdout_month="2013-07")
    assert not holdout.retrain_recommended and not holdout.degraded and not holdout.drift_triggered
    assert holdout.notes[0].startswith("not a retraining signal: 2013-07 is the champion's own holdout month")
    after = drift_report("2013-08", *args, settings, holdout_auc=0.74, holdout_month="2013-07")
    assert after.retrain_recommended and after.degraded and after.drift_triggered


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
        assert columns == [
            "month_key", "feature", "psi", "ks_stat", "ks_pvalue", "drifted", "run_id", "psi_threshold",
            "ks_threshold", "importance",
        ]  # fmt: skip
        thresholds = con.execute(
            "select distinct psi_threshold, ks_threshold, importance from drift_metrics"
        ).fetchall()
        assert thresholds == [(0.2, 0.1, 0.25)]  # fixed thresholds, uniform weights of 4 features
        assert con.execute("select holdout_auc from model_performance").fetchall() == [(None,)]
    finally:
        con.close()
