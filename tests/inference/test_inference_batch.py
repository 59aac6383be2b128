"""Batch scoring: feature order and checks of score(), and score_month end to end on a hand-made warehouse
with the real Feast store (point-in-time features, predictions table, idempotent re-runs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from warehouse_builders import fct_row, load_tables, planes_frame, weather_frame

from hybridops.features.compute import build_feature_tables
from hybridops.features.keys import origin_hour_key, origin_utc_hour_key
from hybridops.features.request import model_features, with_request_features
from hybridops.features.store import apply_definitions, feature_store, historical_features
from hybridops.inference.batch import (
    MissingFeaturesError,
    score,
    score_month,
    score_months,
    scoring_entities,
)
from hybridops.settings import FeastSettings, Settings

PARAMS = {"objective": "binary", "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5, "seed": 0}


def _booster(frame: pd.DataFrame, label: np.ndarray, rounds: int = 10) -> lgb.Booster:
    return lgb.train(PARAMS, lgb.Dataset(frame, label=label), num_boost_round=rounds)


# --- score() ------------------------------------------------------------------------------------------
def test_score_takes_the_column_order_from_the_booster() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"b": rng.normal(size=400), "a": rng.normal(size=400)})
    booster = _booster(train, (train["b"] > 0).astype(int).to_numpy())
    assert booster.feature_name() == ["b", "a"]
    # the frame has the features in another order, plus non-feature columns and a nullable int column
    frame = pd.DataFrame({"flight_id": ["x", "y", "z"], "a": [0.0, 0.0, 5.0], "b": [-2.0, 2.0, 0.1]})
    frame["a"] = pd.array([0, 0, None], dtype="Int64")
    expected = booster.predict(np.array([[-2.0, 0.0], [2.0, 0.0], [0.1, np.nan]]))
    np.testing.assert_allclose(score(booster, frame, ["a", "b"]), expected)
    assert score(booster, frame)[1] > 0.5 > score(booster, frame)[0]
    assert score(booster, frame.iloc[:0]).shape == (0,)


def test_score_names_the_missing_features() -> None:
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"temp": rng.normal(size=200), "visib": rng.normal(size=200)})
    booster = _booster(train, (train["temp"] > 0).astype(int).to_numpy(), rounds=2)
    with pytest.raises(MissingFeaturesError, match=r"\['visib'\]"):
        score(booster, pd.DataFrame({"temp": [1.0]}))
    with pytest.raises(MissingFeaturesError, match=r"feature service lacks: \['visib'\]"):
        score(booster, pd.DataFrame({"temp": [1.0], "visib": [2.0]}), ["temp"])


# --- a hand-made warehouse (the builders of tests/warehouse_builders.py) -----------------------------
def _temp(hour: pd.Timestamp, origin: str) -> float:
    """A deterministic hourly temperature: cold nights, warm afternoons, JFK 5 degrees warmer."""
    return float(20 + 15 * np.sin(2 * np.pi * (hour.hour - 9) / 24) + (5 if origin == "JFK" else 0))


def _warehouse(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    hours = pd.date_range("2013-01-01 00:00", "2013-02-01 12:00", freq="h")
    weather = weather_frame([(o, h, _temp(h, o)) for o in ("EWR", "JFK") for h in hours])
    rows = []
    starts = pd.date_range("2013-01-01 11:00", "2013-02-01 03:00", periods=400).round("min")
    for n, start in enumerate(starts):
        origin = ("EWR", "JFK")[n % 2]
        carrier = ("AA", "UA", "B6")[n % 3]
        temp = _temp(start.floor("h"), origin)
        delayed = rng.random() < (0.7 if temp > 25 else 0.15)  # warm hours are late: learnable from temp
        cancelled = n % 25 == 7
        delay = float(rng.integers(20, 90)) if delayed else float(rng.integers(-5, 10))
        rows.append(fct_row(n, start, delay, carrier, origin, ("IAH", "ORD")[n % 2], f"N{n % 5}", cancelled))
    # two February flights (local month 2013-02) must not be scored with January
    rows.append(fct_row(900, pd.Timestamp("2013-02-01 14:00"), 0.0, "AA", "EWR", "IAH", "N1"))
    rows.append(fct_row(901, pd.Timestamp("2013-02-01 15:00"), 30.0, "UA", "JFK", "ORD", "N2"))
    planes = planes_frame([(f"N{i}", 1995 + 3 * i, 100 + 20 * i, 2) for i in range(4)])  # N4 unknown
    return pd.DataFrame(rows), weather, planes


@pytest.fixture(scope="module")
def scored_world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("inference")
    backend = "duckdb" if importlib.util.find_spec("ibis") else "dask"
    settings = Settings(home=tmp / "home", feast=FeastSettings(offline_store=backend))
    con = duckdb.connect(str(Path(tmp) / "warehouse.duckdb"))
    fct, weather, planes = _warehouse(np.random.default_rng(42))
    load_tables(con, fct, weather, planes)
    build_feature_tables(con, settings.parquet_dir, "2013-01")
    store = feature_store(settings)
    apply_definitions(store, settings)
    # Train a tiny model on the Feast features, the way training does (known outcomes only).
    entities = scoring_entities(con, "2013-01")
    train = with_request_features(
        historical_features(store, entities[~entities["cancelled"]].reset_index(drop=True))
    )
    names = model_features()
    booster = _booster(train[names].astype("float64"), train["delayed_15"].astype(int).to_numpy(), rounds=20)
    yield con, store, booster, fct
    con.close()


def test_scoring_entities_keep_cancelled_flights_of_the_month_only(scored_world) -> None:
    con, *_, fct = scored_world
    entities = scoring_entities(con, "2013-01")
    january = fct[fct["month_key"] == "2013-01"]
    assert len(entities) == len(january) == 400
    assert set(entities["flight_id"]) == set(january["flight_id"])
    assert list(entities.columns) == [
        "flight_id", "month_key", "origin", "carrier", "dest", "route", "tailnum", "origin_hour",
        "origin_utc_hour", "origin_slot", "sched_dep_utc", "event_timestamp", "cancelled", "delayed_15",
    ]  # fmt: skip
    # origin_utc_hour is the origin and UTC hour of departure (the weather key; flight 0: 11:00 UTC)
    utc_keys = {
        fid: origin_utc_hour_key(o, t)
        for fid, o, t in zip(january["flight_id"], january["origin"], january["sched_dep_utc"], strict=True)
    }
    assert entities.set_index("flight_id")["origin_utc_hour"].to_dict() == utc_keys
    assert utc_keys[fct.loc[0, "flight_id"]] == "EWR-2013-01-01T11"
    # origin_hour is the origin and *local* scheduled hour of each flight (e.g. flight 0: 06:00 local)
    local_keys = {
        fid: origin_hour_key(o, t)
        for fid, o, t in zip(january["flight_id"], january["origin"], january["sched_dep_local"], strict=True)
    }
    assert entities.set_index("flight_id")["origin_hour"].to_dict() == local_keys
    assert local_keys[fct.loc[0, "flight_id"]] == "EWR-06"
    assert entities["cancelled"].sum() == 16
    assert entities.loc[entities["cancelled"], "delayed_15"].isna().all()
    assert entities["event_timestamp"].is_monotonic_increasing


def test_score_month_writes_predictions_and_reruns_replace_them(scored_world) -> None:
    con, store, booster, fct = scored_world
    first = score_month(con, store, booster, "flight_delay", 3, "2013-01", "run-1")
    assert first.rows == 400 == len(first.predictions) == len(first.features)
    assert list(first.predictions.columns) == [
        "flight_id", "month_key", "event_timestamp", "delay_probability", "delayed", "model_name",
        "model_version", "scored_at", "run_id",
    ]  # fmt: skip
    # the scores are the booster's on the point-in-time features, cancelled flights included
    expected = booster.predict(first.features[booster.feature_name()].astype("float64").to_numpy())
    np.testing.assert_allclose(first.predictions["delay_probability"], expected)
    assert first.features["cancelled"].sum() == 16
    assert first.positive_rate == pytest.approx((expected >= 0.5).mean())
    assert 0 < first.positive_rate < 1  # the model learnt something from temp
    # point in time: a flight gets the weather of the last hour at or before its as-of time (departure
    # minus the horizon: the entity timestamp)
    row = first.features.iloc[100]
    hour = pd.Timestamp(row["event_timestamp"]).floor("h")
    assert row["temp"] == pytest.approx(_temp(hour, row["origin"]))
    assert pd.isna(first.features.loc[first.features["tailnum"] == "N4", "plane_seats"]).all()
    # origin-hour stats by hand: the row of the flight's local midnight T counts the flights of the same
    # origin and local hour known in [T - 28 days, T) (whenever there is one; else an older row or null).
    history = fct.assign(
        origin_hour=[
            origin_hour_key(o, t) for o, t in zip(fct["origin"], fct["sched_dep_local"], strict=True)
        ],
        known=fct["sched_dep_utc"] + pd.to_timedelta(fct["dep_delay"].fillna(0), unit="m"),
    )
    # the local midnight of the flight's as-of time (departure minus the horizon: the entity timestamp)
    midnight = (
        pd.to_datetime(first.features["event_timestamp"])
        .dt.tz_localize("UTC")
        .dt.tz_convert("America/New_York")
        .dt.normalize()
        .dt.tz_convert("UTC")
        .dt.tz_localize(None)
    )
    checked = 0
    for (_, row), day in zip(first.features.iterrows(), midnight, strict=True):
        same = history[
            (history["origin_hour"] == row["origin_hour"])
            & (history["known"] < day)
            & (history["known"] >= day - pd.Timedelta(days=28))
        ]
        if same.empty:
            continue
        checked += 1
        assert row["origin_hour_flights_28d"] == len(same), row["flight_id"]
        outcomes = same[same["delayed_15"].notna()]
        expected_rate = outcomes["delayed_15"].astype(float).mean() if len(outcomes) else np.nan
        assert row["origin_hour_delay_rate_28d"] == pytest.approx(expected_rate, nan_ok=True), row[
            "flight_id"
        ]
    assert checked > 100

    table = con.execute("select * from predictions order by event_timestamp, flight_id").df()
    assert len(table) == 400 and table["flight_id"].is_unique
    assert set(table["model_version"]) == {"3"} and set(table["model_name"]) == {"flight_delay"}
    assert set(table["month_key"]) == {"2013-01"} and set(table["run_id"]) == {"run-1"}
    assert (table["delayed"] == (table["delay_probability"] >= 0.5)).all()
    types = dict(con.execute("select column_name, column_type from (describe predictions)").fetchall())
    assert types["event_timestamp"] == "TIMESTAMP" and types["scored_at"] == "TIMESTAMP"
    assert types["delayed"] == "BOOLEAN" and types["delay_probability"] == "DOUBLE"

    # another month's rows are left alone; a re-run of January replaces its rows
    con.execute(
        "insert into predictions select * replace ('2013-02' as month_key, flight_id || '-feb' as flight_id) "
        "from predictions limit 5"
    )
    second = score_month(con, store, booster, "flight_delay", "4", "2013-01", "run-2")
    assert second.rows == 400
    counts = con.execute(
        "select month_key, count(*), count(distinct flight_id), min(run_id), min(model_version) "
        "from predictions group by month_key order by month_key"
    ).fetchall()
    assert counts == [("2013-01", 400, 400, "run-2", "4"), ("2013-02", 5, 5, "run-1", "3")]


def test_score_month_of_an_empty_month_writes_nothing(scored_world) -> None:
    con, store, booster, _fct = scored_world
    result = score_month(con, store, booster, "flight_delay", "3", "2013-03", "run-3")
    assert result.rows == 0 and np.isnan(result.positive_rate)
    (count,) = con.execute("select count(*) from predictions where month_key = '2013-03'").fetchone()
    assert count == 0


def test_score_months_equals_scoring_each_month_on_its_own(scored_world) -> None:
    con, store, booster, _fct = scored_world
    one_by_one = {m: score_month(con, store, booster, "flight_delay", "5", m, "run-4") for m in MONTHS}
    together = score_months(con, store, booster, "flight_delay", "5", MONTHS, "run-5")
    assert list(together) == MONTHS and [r.rows for r in together.values()] == [400, 2]
    for month, alone in one_by_one.items():
        both = together[month]
        pd.testing.assert_frame_equal(
            both.predictions.drop(columns=["scored_at", "run_id"]),
            alone.predictions.drop(columns=["scored_at", "run_id"]),
        )
        pd.testing.assert_frame_equal(both.features, alone.features)
        assert both.positive_rate == alone.positive_rate
    counts = con.execute(
        "select month_key, count(*), min(run_id) from predictions where month_key in ('2013-01', '2013-02') "
        "group by 1 order by 1"
    ).fetchall()
    assert counts == [("2013-01", 400, "run-5"), ("2013-02", 2, "run-5")]  # one write replaced both months


MONTHS = ["2013-01", "2013-02"]
