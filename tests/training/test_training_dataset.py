"""Labels from the warehouse, point-in-time features through Feast, and the training-set guards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from training_support import (
    fct_row,
    feast_for,
    load_tables,
    planes_frame,
    synthetic_warehouse,
    weather_frame,
)

from hybridops.errors import HybridopsError
from hybridops.features import pit_cache
from hybridops.features.entities import flight_entities
from hybridops.features.keys import WEATHER_TTL_HOURS, origin_hour_key, origin_slot_key, origin_utc_hour_key
from hybridops.features.request import REQUEST_FEATURES, model_features
from hybridops.features.store import apply_definitions, feature_store, load_definitions_module
from hybridops.settings import Settings, TrainingSettings
from hybridops.training import dataset
from hybridops.training.dataset import build_training_set, frame_sha256, labelled_flights
from hybridops.warehouse.db import write_parquet_partition

LENIENT = TrainingSettings(min_rows=10, max_feature_null_rate=1.0)


# --- labels ------------------------------------------------------------------------------------------
def test_labels_exclude_and_count_cancelled_flights(con: duckdb.DuckDBPyConnection) -> None:
    fct = pd.DataFrame(
        [
            fct_row(1, "2013-01-05 12:00", 30.0),  # delayed
            fct_row(2, "2013-01-05 13:00", 14.0),  # 14 minutes is on time
            fct_row(3, "2013-01-05 14:00", 15.0),  # 15 minutes is delayed
            fct_row(4, "2013-01-05 15:00", None, cancelled=True),
            fct_row(5, "2013-01-06 15:00", -3.0, tailnum=None),
            fct_row(6, "2013-02-01 04:30", 60.0),  # Jan 31 23:30 local: a January flight
            fct_row(7, "2013-02-02 15:00", 0.0),  # February
            fct_row(8, "2013-02-02 16:00", None, cancelled=True),  # February
        ]
    )
    load_tables(con, fct, weather_frame([]), planes_frame([("N1", 2003, 100, 2)]))

    january = labelled_flights(con, ["2013-01"])
    entities = january.entities
    assert january.cancelled_excluded == 1
    assert list(entities.columns) == [
        "flight_id", "month_key", "origin", "carrier", "dest", "route", "tailnum", "origin_hour",
        "origin_utc_hour", "origin_slot", "sched_dep_utc", "event_timestamp", "label",
    ]  # fmt: skip
    assert entities["flight_id"].is_monotonic_increasing
    by_id = entities.set_index(entities["flight_id"].str.split("_").str[2].astype(int))
    assert sorted(by_id.index) == [1, 2, 3, 5, 6]
    assert by_id["label"].to_dict() == {1: 1, 2: 0, 3: 1, 5: 0, 6: 1}
    # origin and local scheduled hour (EST = UTC-5): flight 6 departs Jan 31 23:30 local
    assert by_id["origin_hour"].to_dict() == {1: "EWR-07", 2: "EWR-08", 3: "EWR-09", 5: "EWR-10", 6: "EWR-23"}
    assert str(entities["label"].dtype) == "int64"
    # the as-of time: sched_dep_utc (02-01 04:30) minus the default 120-minute horizon
    assert by_id.loc[6, "event_timestamp"] == pd.Timestamp("2013-02-01 02:30")
    assert by_id.loc[6, "origin_slot"] == "EWR-2013-02-01T04:30"  # the departure's own quarter hour
    assert labelled_flights(con, ["2013-01"], 0).entities["event_timestamp"].max() == pd.Timestamp(
        "2013-02-01 04:30"
    )
    assert by_id.loc[6, "month_key"] == "2013-01"
    assert pd.isna(by_id.loc[5, "tailnum"])

    both = labelled_flights(con, ["2013-01", "2013-02"])
    assert both.cancelled_excluded == 2
    assert len(both.entities) == 6
    assert labelled_flights(con, ["2013-03"]).entities.empty


def test_labelled_flights_are_the_departed_entity_rows_in_flight_id_order(
    con: duckdb.DuckDBPyConnection,
) -> None:
    synthetic_warehouse(con, ["2013-01"], flights_per_day=10)
    labelled = labelled_flights(con, ["2013-01"])
    entities = labelled.entities
    raw = flight_entities(con, ["2013-01"])  # every flight, departure order, object strings
    cancelled = raw["cancelled"].fillna(False).astype(bool)
    assert labelled.cancelled_excluded == int(cancelled.sum()) > 0
    assert labelled.unlabelled_excluded == 0
    expected = raw[~cancelled].sort_values("flight_id").reset_index(drop=True)
    expected["label"] = expected["delayed_15"].astype(bool).astype("int64")
    expected = expected[list(entities.columns)]
    strings = [c for c in entities.columns if entities[c].dtype == "string[pyarrow]"]
    assert strings == ["flight_id", "month_key", "origin", "carrier", "dest", "route", "tailnum",
                       "origin_hour", "origin_utc_hour", "origin_slot"]  # fmt: skip
    assert str(entities["event_timestamp"].dtype) == "datetime64[us]"
    as_objects = entities.astype({c: object for c in strings})
    pd.testing.assert_frame_equal(as_objects, expected.astype({c: object for c in strings}))


# --- point in time -----------------------------------------------------------------------------------
def _leaky_warehouse(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """AA flights on Jan 5 whose later weather and later-known outcomes must not reach their features."""
    flights = [
        fct_row(1, "2013-01-03 15:00", 30.0),  # known Jan 3 15:30 UTC
        fct_row(2, "2013-01-05 03:00", 300.0),  # Jan 4 22:00 local, known Jan 5 08:00 UTC
        fct_row(3, "2013-01-05 11:30", 180.0),  # the flight under test: weather at 12:00 exists
        fct_row(4, "2013-01-05 12:00", 20.0),
    ]
    # Padding on another carrier, origin and route so the set has the minimum of 10 rows.
    flights += [
        fct_row(10 + i, f"2013-01-{10 + i:02d} 15:00", 5.0, carrier="UA", origin="JFK", dest="LAX")
        for i in range(6)
    ]
    weather = weather_frame(
        [("EWR", f"2013-01-05 {h:02d}:00", float(h)) for h in (10, 11, 12, 13)]
        + [("JFK", f"2013-01-{10 + i:02d} 15:00", 50.0 + i) for i in range(6)]
    )
    load_tables(con, pd.DataFrame(flights), weather, planes_frame([("N1", 2003, 100, 2)]))
    return pd.DataFrame(flights)


def test_training_set_never_uses_values_from_after_departure(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _leaky_warehouse(con)
    settings = Settings(home=tmp_path / "home")
    # Horizon 0: the join instant is the departure (tests/training/test_training_horizon.py covers 120).
    store = feast_for(con, settings, ["2013-01"], horizon_minutes=0)
    # A carrier-stats row stamped one minute after flight 3 with a value no earlier row has.
    stats_file = settings.parquet_dir / "features" / "carrier_delay_stats" / "month_key=2013-01"
    stats = pd.read_parquet(stats_file / "data.parquet")
    late = stats.iloc[[0]].copy()
    late["carrier"] = "AA"
    late["event_timestamp"] = pd.Timestamp("2013-01-05 11:31").as_unit("us")
    late["carrier_flights_7d"] = pd.array([999], dtype="Int64")
    write_parquet_partition(late, settings.parquet_dir / "features", "carrier_delay_stats", "late")

    entities = labelled_flights(con, ["2013-01"], horizon_minutes=0).entities
    built = build_training_set(store, entities, LENIENT)
    out = built.frame.set_index(built.frame["flight_id"].str.split("_").str[2].astype(int))

    assert out.loc[3, "temp"] == 11.0  # 11:00 observation, not 12:00's
    assert out.loc[4, "temp"] == 12.0  # an observation exactly at departure is known
    # Carrier stats at Jan 5 00:00 local (05:00 UTC): only flight 1 was known (flight 2's delay became
    # known at 08:00 UTC, flight 3's own outcome later still); the 11:31 row is in flight 3's future.
    assert out.loc[3, "carrier_flights_7d"] == 1
    assert out.loc[3, "carrier_dep_delay_mean_7d"] == pytest.approx(30.0)
    assert out.loc[4, "carrier_flights_7d"] == 999  # the 11:31 row precedes the 12:00 flight
    assert out.loc[3, "plane_age_years"] == 10
    # Every feature timestamp precedes the flight: the warehouse copy of weather (-1) is never used.
    assert (out["temp"] != -1.0).all()
    for flight in range(10, 16):
        assert out.loc[flight, "temp"] == 50.0 + flight - 10
    # Origin-hour stats: the padding flights all leave JFK at 10:00 local (JFK-10), one a day, each known
    # 5 minutes after departure; a flight sees the earlier days' flights (from its local midnight's row),
    # never its own outcome. The AA flights are alone in their hours (EWR-10, -22, -06, -07).
    assert pd.isna(out.loc[10, "origin_hour_flights_28d"])
    for flight in range(11, 16):
        assert out.loc[flight, "origin_hour_flights_28d"] == flight - 10
        assert out.loc[flight, "origin_hour_dep_delay_mean_28d"] == pytest.approx(5.0)
        assert out.loc[flight, "origin_hour_delay_rate_28d"] == pytest.approx(0.0)
    assert out.loc[[1, 2, 3, 4], "origin_hour_flights_28d"].isna().all()


def _write(settings: Settings, view: str, rows: list[dict[str, Any]], partition: str = "2013-01") -> None:
    frame = pd.DataFrame(rows)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"]).astype("datetime64[us]")
    for column in frame.columns:
        if (column.endswith(("_7d", "_28d")) and "flights" in column) or column.startswith("plane_"):
            frame[column] = frame[column].astype("Int64")
    write_parquet_partition(frame, settings.parquet_dir / "features", view, partition)


def _weather(origin: str, ts: str, temp: float) -> list[dict[str, Any]]:
    """One observation, under the keys of the hours its ttl reaches (as the feature table holds it)."""
    values = dict.fromkeys(["dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"], temp)
    hours = [pd.Timestamp(ts) + pd.Timedelta(hours=k) for k in range(WEATHER_TTL_HOURS + 1)]
    return [
        {"origin_utc_hour": origin_utc_hour_key(origin, hour), "origin": origin, "event_timestamp": ts,
         "temp": temp, **values}
        for hour in hours
    ]  # fmt: skip


def _carrier(carrier: str, ts: str, flights: int) -> dict[str, Any]:
    return {
        "carrier": carrier, "event_timestamp": ts, "carrier_flights_7d": flights,
        "carrier_dep_delay_mean_7d": flights / 10, "carrier_delay_rate_7d": 0.5,
        "carrier_cancel_rate_7d": 0.0, "carrier_delay_rate_28d": 0.25,
    }  # fmt: skip


def _origin_hour(key: str, ts: str, flights: int) -> dict[str, Any]:
    return {
        "origin_hour": key, "event_timestamp": ts, "origin_hour_flights_28d": flights,
        "origin_hour_dep_delay_mean_28d": flights / 2, "origin_hour_delay_rate_28d": 0.2,
    }  # fmt: skip


def test_point_in_time_join_matches_hand_written_values(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    _write(
        settings,
        "origin_weather",
        [
            *_weather("EWR", "2013-01-05 10:00", 10.0),
            *_weather("EWR", "2013-01-05 11:00", 11.0),
            *_weather("EWR", "2013-01-05 12:00", 12.0),
            *_weather("JFK", "2013-01-05 06:00", 6.0),
        ],
    )
    _write(
        settings,
        "carrier_delay_stats",
        [
            _carrier("AA", "2013-01-04 05:00", 3),
            _carrier("AA", "2013-01-05 05:00", 4),
            _carrier("AA", "2013-01-05 11:31", 999),
            _carrier("UA", "2013-01-01 05:00", 7),
        ],
    )
    _write(
        settings,
        "route_delay_stats",
        [
            {"route": "EWR-IAH", "event_timestamp": "2013-01-05 05:00", "route_flights_28d": 10,
             "route_dep_delay_mean_28d": 1.5, "route_delay_rate_28d": 0.1},
        ],
    )  # fmt: skip
    _write(
        settings,
        "origin_hour_delay_stats",
        [
            _origin_hour("EWR-06", "2013-01-05 05:00", 12),
            _origin_hour("EWR-06", "2013-01-05 11:31", 998),
            _origin_hour("EWR-07", "2013-01-05 05:00", 5),
            _origin_hour("EWR-23", "2013-01-05 05:00", 8),
            _origin_hour("JFK-03", "2013-01-03 09:00", 2),
            _origin_hour("JFK-04", "2013-01-03 09:00", 6),
        ],
    )
    _write(
        settings,
        "plane_profile",
        [
            {"tailnum": "N1", "event_timestamp": "2013-01-01 00:00", "plane_year": 2003, "plane_seats": 100,
             "plane_engines": 2, "plane_age_years": 10},
        ],
        partition="static",
    )  # fmt: skip
    # The intraday views hold nothing these flights can reach (other keys).
    _write(
        settings,
        "origin_intraday",
        [
            {"origin_slot": "LGA-2013-01-01T00:00", "event_timestamp": "2013-01-01 00:00",
             **{name: 1 if str(kind) == "Int64" else 1.0
                for name, kind in load_definitions_module().VIEW_FEATURES["origin_intraday"].items()}},
        ],
    )  # fmt: skip
    _write(
        settings,
        "tail_last_flight",
        [{"tailnum": "N9", "event_timestamp": "2013-01-01 00:00", "tail_last_dep_delay": 1.0,
          "tail_last_delayed": 0.0, "tail_last_departed_at": 1356998400.0}],
    )  # fmt: skip
    store = feature_store(settings)
    apply_definitions(store, settings)

    def flight(fid: str, ts: str, origin: str = "EWR", carrier: str = "AA") -> dict[str, Any]:
        route = "EWR-IAH" if origin == "EWR" else "JFK-LAX"
        tailnum = "N1" if origin == "EWR" else "N2"
        local = pd.Timestamp(ts).tz_localize("UTC").tz_convert("America/New_York")
        return {"flight_id": fid, "month_key": "2013-01", "origin": origin, "carrier": carrier,
                "dest": route[4:], "route": route, "tailnum": tailnum,
                "origin_hour": origin_hour_key(origin, local),
                "origin_utc_hour": origin_utc_hour_key(origin, pd.Timestamp(ts)),
                "origin_slot": origin_slot_key(origin, pd.Timestamp(ts)),
                "sched_dep_utc": pd.Timestamp(ts), "event_timestamp": pd.Timestamp(ts), "label": 0}  # fmt: skip

    entities = pd.DataFrame(
        [
            flight("f01", "2013-01-05 11:30"),
            flight("f02", "2013-01-05 12:00"),
            flight("f03", "2013-01-05 11:31"),
            flight("f04", "2013-01-05 11:30:59"),
            flight("f05", "2013-01-05 08:59", "JFK", "UA"),
            flight("f06", "2013-01-05 09:01", "JFK", "UA"),
            flight("f07", "2013-01-05 04:59"),
            flight("f08", "2013-01-06 04:59"),
            flight("f09", "2013-01-07 11:32"),
            flight("f10", "2013-01-01 00:00"),
        ]
    ).sample(frac=1, random_state=2)
    # local hours (EST = UTC-5): f01 departs 06:30, f07 Jan 4 23:59, f10 Dec 31 19:00
    assert entities.set_index("flight_id")["origin_hour"].sort_index().tolist() == [
        "EWR-06", "EWR-07", "EWR-06", "EWR-06", "JFK-03", "JFK-04", "EWR-23", "EWR-23", "EWR-06", "EWR-19",
    ]  # fmt: skip
    built = build_training_set(store, entities, LENIENT)
    out = built.frame.set_index("flight_id")
    nan = None
    expected = pd.DataFrame(
        {  # temp, carrier_flights_7d, route_flights_28d, origin_hour_flights_28d, plane_year
            "f01": [11.0, 4, 10, 12, 2003],
            "f02": [12.0, 999, 10, 5, 2003],  # an event at the entity timestamp is included
            "f03": [11.0, 999, 10, 998, 2003],
            "f04": [11.0, 4, 10, 12, 2003],  # one second before the 11:31 rows
            "f05": [6.0, nan, nan, 2, nan],  # weather 2h59 old (ttl 3h); UA stats 4 days old (ttl 2d);
            # JFK-03 1 day 23h59 old
            "f06": [nan, nan, nan, nan, nan],  # weather 3h01 old; JFK-04 2 days and 1 minute old
            "f07": [nan, 3, nan, nan, 2003],  # before EWR's first observation, the route and EWR-23 rows
            "f08": [nan, 999, 10, 8, 2003],  # 17 h after the last weather; stats within 2 days
            "f09": [nan, nan, nan, nan, 2003],  # 2 days and 1 minute after the last stats rows
            "f10": [nan, nan, nan, nan, 2003],  # the static plane row at exactly 2013-01-01 00:00; no EWR-19
        },
        index=["temp", "carrier_flights_7d", "route_flights_28d", "origin_hour_flights_28d", "plane_year"],
    ).T.astype("float64")
    pd.testing.assert_frame_equal(out[expected.columns].sort_index(), expected, check_names=False)
    assert out.loc["f01", "carrier_dep_delay_mean_7d"] == pytest.approx(0.4)
    assert out.loc["f01", "origin_hour_dep_delay_mean_28d"] == pytest.approx(6.0)
    assert out.loc["f03", "origin_hour_dep_delay_mean_28d"] == pytest.approx(499.0)
    assert out.loc["f05", "origin_hour_delay_rate_28d"] == pytest.approx(0.2)
    assert built.rows == 10
    assert built.features == model_features() and "tail_last_departed_at" not in built.features
    # f01 (entity rows stamped at the departure here): Saturday 2013-01-05 06:30 EST, AA EWR-IAH in base 36;
    # its plane N1 has no departure in the store: no turn
    request = out.loc["f01", REQUEST_FEATURES].tolist()
    assert request[:6] == [6.0, 30.0, 6.0, 10 * 36 + 10, (14 * 36 + 32) * 36 + 27, (18 * 36 + 10) * 36 + 17]
    assert np.isnan(request[6])
    # f05: JFK's 08:59 UTC is 03:59 EST; UA, JFK
    assert out.loc["f05", ["sched_hour", "carrier_code", "origin_code"]].tolist() == [
        3.0, 30 * 36 + 10, (19 * 36 + 15) * 36 + 20,
    ]  # fmt: skip
    assert built.null_rates["temp"] == pytest.approx(0.5)
    assert built.null_rates["plane_year"] == pytest.approx(0.2)
    assert list(built.frame["flight_id"]) == sorted(entities["flight_id"])

    with pytest.raises(HybridopsError, match=r"temp \(50\.0%\)") as failure:
        build_training_set(store, entities, TrainingSettings(min_rows=10, max_feature_null_rate=0.4))
    assert "plane_year" not in str(failure.value)  # 20% null: within the limit
    assert "wind_gust" not in str(failure.value)  # null by nature: exempt (sparse_features)


# --- guards and hashes -------------------------------------------------------------------------------
def test_too_few_rows_are_refused(synthetic: dict[str, Any]) -> None:
    entities = synthetic["labelled"].entities.head(50)
    with pytest.raises(HybridopsError, match=r"50 labelled flights, fewer than training\.min_rows=1000"):
        build_training_set(synthetic["store"], entities, TrainingSettings())


def test_lost_rows_are_refused(synthetic: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    real = pit_cache.historical_features
    monkeypatch.setattr(pit_cache, "historical_features", lambda store, df: real(store, df).iloc[1:])
    entities = synthetic["labelled"].entities.head(200)
    with pytest.raises(HybridopsError, match="199 rows for 200 entity rows"):
        build_training_set(synthetic["store"], entities, TrainingSettings(min_rows=100))


def test_training_set_hash_is_stable_and_content_based(synthetic: dict[str, Any]) -> None:
    store, entities = synthetic["store"], synthetic["labelled"].entities
    settings = TrainingSettings(min_rows=100)
    first = build_training_set(store, entities, settings)
    second = build_training_set(store, entities.sample(frac=1, random_state=5), settings)
    assert first.sha256 == second.sha256
    assert first.rows == len(entities) > 3000
    assert first.feature_views == {
        "origin_weather": 0, "carrier_delay_stats": 0, "route_delay_stats": 0, "origin_hour_delay_stats": 0,
        "plane_profile": 0, "origin_intraday": 0, "tail_last_flight": 0, "flight_request": 0,
    }  # fmt: skip
    assert set(first.feature_view_digests) == set(first.feature_views)
    assert first.null_rates["temp"] == 0.0
    changed = first.frame.copy()
    changed.loc[0, "label"] = 1 - changed.loc[0, "label"]
    assert frame_sha256(changed) != first.sha256
    assert frame_sha256(first.frame.sample(frac=1, random_state=1)) == first.sha256


def test_training_set_hash_ignores_string_storage_and_row_order(synthetic: dict[str, Any]) -> None:
    built = build_training_set(
        synthetic["store"], synthetic["labelled"].entities, TrainingSettings(min_rows=100)
    )
    frame = built.frame
    strings = [c for c in frame.columns if frame[c].dtype == "string[pyarrow]"]
    assert "flight_id" in strings and "tailnum" in strings  # as labelled_flights produces them
    as_objects = frame.astype({c: object for c in strings})
    assert frame_sha256(as_objects) == built.sha256
    assert frame_sha256(frame.astype({c: "string[python]" for c in strings})) == built.sha256
    assert frame_sha256(as_objects.sample(frac=1, random_state=3)) == built.sha256
    assert frame_sha256(frame.sample(frac=1, random_state=4)) == built.sha256

    first_id = frame.loc[0, "flight_id"]
    for column, value in [
        ("flight_id", first_id + "x"), ("tailnum", None), ("tailnum", "N99"), ("month_key", "2013-02"),
        ("temp", np.nan), ("temp", frame.loc[0, "temp"] + 0.5),
        ("event_timestamp", frame.loc[0, "event_timestamp"] + pd.Timedelta(seconds=1)),
    ]:  # fmt: skip
        changed = frame.copy()
        changed.loc[0, column] = value
        assert frame_sha256(changed) != built.sha256, (column, value)
        assert frame_sha256(changed.astype({c: object for c in strings})) == frame_sha256(changed)


def test_frame_hash_sees_string_boundaries_nulls_and_columns() -> None:
    base = pd.DataFrame({"flight_id": ["f1", "f2"], "tailnum": ["AB", "C"], "temp": [np.nan, 1.0]})
    digest = frame_sha256(base)
    assert frame_sha256(base.assign(tailnum=["A", "BC"])) != digest  # same bytes, other strings
    assert frame_sha256(base.assign(tailnum=[None, "C"])) != frame_sha256(base.assign(tailnum=["", "C"]))
    assert frame_sha256(base.rename(columns={"temp": "dewp"})) != digest
    assert frame_sha256(base.assign(temp=[np.nan, 1])) == digest  # float64 either way
    assert frame_sha256(base.assign(temp=pd.array([np.nan, 1.0], dtype="float32"))) != digest
    negative_nan = np.copysign(np.nan, -1.0)  # another NaN bit pattern: the same missing value
    assert frame_sha256(base.assign(temp=[negative_nan, 1.0])) == digest
    assert frame_sha256(pd.concat([base, base.iloc[[1]].assign(flight_id="f3")])) != digest
    categorical = base.assign(tailnum=base["tailnum"].astype("category"))
    assert frame_sha256(categorical) == frame_sha256(categorical.iloc[::-1])  # other dtypes: still ordered


def test_feature_view_version_follows_feast_registry(tmp_path: Path) -> None:
    from feast import FeatureView

    from hybridops.features.store import load_definitions_module

    settings = Settings(home=tmp_path)
    store = feature_store(settings)
    apply_definitions(store, settings)
    before = dataset.feature_view_versions(store)
    objects = load_definitions_module().definitions(settings.parquet_dir)
    (weather,) = [o for o in objects if isinstance(o, FeatureView) and o.name == "origin_weather"]
    weather.features = [f for f in weather.features if f.name != "visib"]
    store.apply([weather])
    versions, digests = dataset.feature_view_versions(feature_store(settings))
    assert before[0]["origin_weather"] == 0 and versions["origin_weather"] == 1
    assert digests["origin_weather"] != before[1]["origin_weather"]
    assert digests["plane_profile"] == before[1]["plane_profile"]
