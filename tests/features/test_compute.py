"""Feature SQL on hand-made data with hand-computed expectations."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from features_support import fct_row, load_tables, planes_frame, weather_frame

from hybridops.features import compute
from hybridops.features.compute import build_feature_tables, build_feature_tables_months
from hybridops.features.keys import (
    DEFAULT_HORIZON_MINUTES,
    UTC,
    WEATHER_TTL_HOURS,
    departure_keys,
    month_window,
    origin_hour_key,
)
from hybridops.features.views import compute_view


def _carrier_flights() -> pd.DataFrame:
    # Local midnight of Jan 2 is 2013-01-02 05:00 UTC (EST = UTC-5).
    rows = [
        fct_row(6, "2013-01-01 05:00", 0.0),  # known exactly at Jan 1 00:00 local
        fct_row(1, "2013-01-01 12:00", 30.0),
        fct_row(2, "2013-01-01 14:00", -5.0),  # left early: known 13:55
        fct_row(3, "2013-01-01 20:00", None, cancelled=True),
        fct_row(4, "2013-01-02 03:00", 180.0),  # Jan 1 22:00 local, departs past midnight: known 06:00
        fct_row(5, "2013-01-02 04:00", 30.0),  # known 04:30 UTC, before Jan 2 00:00 local
        fct_row(7, "2013-01-02 12:00", 10.0, carrier="UA", origin="JFK", dest="LAX"),
    ]
    return pd.DataFrame(rows)


@pytest.fixture
def hand_made(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    weather = weather_frame(
        [
            ("EWR", "2013-01-01 04:00", 1.0),  # Dec 31 23:00 local: previous month
            ("EWR", "2013-01-01 05:00", 2.0),
            ("EWR", "2013-01-31 12:00", 3.0),
            ("JFK", "2013-02-01 04:00", 4.0),  # Jan 31 23:00 local: still January
            ("JFK", "2013-02-01 05:00", 5.0),  # Feb 1 00:00 local
        ]
    )
    planes = planes_frame([("N1", 2003, 100, 2), ("N2", None, 50, 1)])
    load_tables(con, _carrier_flights(), weather, planes)
    return con


def _at(frame: pd.DataFrame, key: str, value: str, ts: str) -> pd.Series:
    match = frame[(frame[key] == value) & (frame["event_timestamp"] == pd.Timestamp(ts))]
    assert len(match) == 1, f"expected one row for {value} at {ts}, got {len(match)}"
    return match.iloc[0]


def test_month_window_is_the_local_month_in_utc() -> None:
    assert month_window("2013-01") == (datetime(2013, 1, 1, 5), datetime(2013, 2, 1, 5))
    assert month_window("2013-03") == (datetime(2013, 3, 1, 5), datetime(2013, 4, 1, 4))  # DST starts
    assert month_window("2013-12") == (datetime(2013, 12, 1, 5), datetime(2014, 1, 1, 5))


def test_carrier_stats_use_only_known_outcomes(hand_made: duckdb.DuckDBPyConnection) -> None:
    stats = compute_view(hand_made, "carrier_delay_stats", "2013-01")
    aa = stats[stats["carrier"] == "AA"]
    # Jan 1 00:00 local: flight 6 becomes known exactly at T, which the window [T-7d, T) excludes.
    assert pd.Timestamp("2013-01-01 05:00") not in set(aa["event_timestamp"])

    jan2 = _at(stats, "carrier", "AA", "2013-01-02 05:00")  # flights 6,1,2,3,5; not 4 (known 06:00)
    assert jan2["carrier_flights_7d"] == 5
    assert jan2["carrier_dep_delay_mean_7d"] == pytest.approx((0 + 30 - 5 + 30) / 4)
    assert jan2["carrier_delay_rate_7d"] == pytest.approx(2 / 4)
    assert jan2["carrier_cancel_rate_7d"] == pytest.approx(1 / 5)
    assert jan2["carrier_delay_rate_28d"] == pytest.approx(2 / 4)

    jan3 = _at(stats, "carrier", "AA", "2013-01-03 05:00")  # flight 4 is known now
    assert jan3["carrier_flights_7d"] == 6
    assert jan3["carrier_dep_delay_mean_7d"] == pytest.approx((0 + 30 - 5 + 30 + 180) / 5)
    assert jan3["carrier_delay_rate_7d"] == pytest.approx(3 / 5)
    assert jan3["carrier_cancel_rate_7d"] == pytest.approx(1 / 6)

    # Jan 8: T - 7 days = Jan 1 05:00 exactly, so flight 6 (known then) is still inside.
    jan8 = _at(stats, "carrier", "AA", "2013-01-08 05:00")
    assert jan8["carrier_flights_7d"] == 6
    # Jan 9: the 7-day window starts Jan 2 05:00: only flight 4 (known 06:00) remains; 28 days keep all.
    jan9 = _at(stats, "carrier", "AA", "2013-01-09 05:00")
    assert jan9["carrier_flights_7d"] == 1
    assert jan9["carrier_dep_delay_mean_7d"] == pytest.approx(180)
    assert jan9["carrier_delay_rate_7d"] == pytest.approx(1.0)
    assert jan9["carrier_cancel_rate_7d"] == pytest.approx(0.0)
    assert jan9["carrier_delay_rate_28d"] == pytest.approx(3 / 5)
    # 28 days after Jan 1 05:00 the first flights leave the long window; the last (flight 4) is known
    # Jan 2 06:00, so Jan 30 00:00 local (05:00 UTC) is the last day with a row.
    assert aa["event_timestamp"].max() == pd.Timestamp("2013-01-30 05:00")
    jan30 = _at(stats, "carrier", "AA", "2013-01-30 05:00")
    assert jan30["carrier_flights_7d"] == 0
    assert pd.isna(jan30["carrier_dep_delay_mean_7d"]) and pd.isna(jan30["carrier_delay_rate_7d"])
    assert jan30["carrier_delay_rate_28d"] == pytest.approx(1.0)


def test_route_stats_over_28_days(hand_made: duckdb.DuckDBPyConnection) -> None:
    stats = compute_view(hand_made, "route_delay_stats", "2013-01")
    jan2 = _at(stats, "route", "EWR-IAH", "2013-01-02 05:00")
    assert jan2["route_flights_28d"] == 5
    assert jan2["route_dep_delay_mean_28d"] == pytest.approx(55 / 4)
    assert jan2["route_delay_rate_28d"] == pytest.approx(0.5)
    jan29 = _at(stats, "route", "EWR-IAH", "2013-01-29 05:00")  # T-28d = Jan 1 05:00: flight 6 inside
    assert jan29["route_flights_28d"] == 6
    jan30 = _at(stats, "route", "EWR-IAH", "2013-01-30 05:00")  # only flight 4 (known Jan 2 06:00)
    assert jan30["route_flights_28d"] == 1
    lax = stats[stats["route"] == "JFK-LAX"]
    assert lax["event_timestamp"].min() == pd.Timestamp("2013-01-03 05:00")  # known Jan 2 12:10


def test_weather_and_planes(hand_made: duckdb.DuckDBPyConnection) -> None:
    weather = compute_view(hand_made, "origin_weather", "2013-01")
    observations = weather.drop_duplicates(["origin", "event_timestamp"])
    assert sorted(zip(observations["origin"], observations["temp"], strict=True)) == [
        ("EWR", 2.0),
        ("EWR", 3.0),
        ("JFK", 4.0),
    ]
    # Each observation under the keys of the departure hours whose as-of time (departure minus the
    # horizon) it precedes and its 3 h ttl reaches: from observation + horizon on, four hours.
    for row in observations.itertuples():
        keys = weather.loc[
            (weather["origin"] == row.origin) & (weather["event_timestamp"] == row.event_timestamp),
            "origin_utc_hour",
        ]
        lead = row.event_timestamp + pd.Timedelta(minutes=DEFAULT_HORIZON_MINUTES)
        hours = [lead + pd.Timedelta(hours=k) for k in range(WEATHER_TTL_HOURS + 1)]
        assert sorted(keys) == [f"{row.origin}-{hour:%Y-%m-%dT%H}" for hour in hours]
    planes = compute_view(hand_made, "plane_profile", "2013-01").set_index("tailnum")
    assert planes.loc["N1", "plane_age_years"] == 10
    assert pd.isna(planes.loc["N2", "plane_age_years"]) and pd.isna(planes.loc["N2", "plane_year"])
    assert (planes["event_timestamp"] == pd.Timestamp("2013-01-01 00:00")).all()


def test_build_writes_partitions_idempotently(hand_made: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    root = tmp_path / "parquet"
    first = build_feature_tables(hand_made, root, "2013-01")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert files == [
        "features/carrier_delay_stats/month_key=2013-01/data.parquet",
        "features/origin_hour_delay_stats/month_key=2013-01/data.parquet",
        "features/origin_intraday/month_key=2013-01/data.parquet",
        "features/origin_weather/month_key=2013-01/data.parquet",
        "features/plane_profile/month_key=static/data.parquet",
        "features/route_delay_stats/month_key=2013-01/data.parquet",
        "features/tail_last_flight/month_key=2013-01/data.parquet",
    ]
    snapshot = {f: pd.read_parquet(root / f) for f in files}
    assert first == {
        "origin_weather": 3 * (WEATHER_TTL_HOURS + 1),  # 3 observations, each under 4 hour keys
        "carrier_delay_stats": len(snapshot[files[0]]),
        "route_delay_stats": len(snapshot[files[5]]),
        "origin_hour_delay_stats": len(snapshot[files[1]]),
        # every quarter hour of January's 31 local days for each of the two origins
        "origin_intraday": 2 * 31 * 96,
        # the departed flights known in January (flight 3 is cancelled, flight 7 has no tail number)
        "tail_last_flight": len(snapshot[files[6]]),
        "plane_profile": 2,
    }
    # Seven origin-hours (see the test below), each with a row on 28 local days: every flight is known
    # before Jan 3 00:00 local and stays in the 28-day window of 28 consecutive midnights.
    assert first["origin_hour_delay_stats"] == 7 * 28
    assert build_feature_tables(hand_made, root, "2013-01") == first
    for f, frame in snapshot.items():
        pd.testing.assert_frame_equal(pd.read_parquet(root / f), frame)
    # February has (almost) no inputs: the weather row of Feb 1 00:00 local and day rows from January.
    feb = build_feature_tables(hand_made, root, "2013-02")
    assert feb["origin_weather"] == 1 * (WEATHER_TTL_HOURS + 1)
    assert feb["carrier_delay_stats"] == 0  # every flight is known before Feb 1 - 28 days
    assert feb["route_delay_stats"] == feb["origin_hour_delay_stats"] == 0
    assert not (root / "features/carrier_delay_stats/month_key=2013-02").exists()
    assert build_feature_tables(hand_made, root, "2013-01") == first  # months are independent


def test_origin_hour_stats_use_the_local_scheduled_hour(hand_made: duckdb.DuckDBPyConnection) -> None:
    """Same window rules as the route stats, keyed by origin and local scheduled hour (``EWR-00``)."""
    stats = compute_view(hand_made, "origin_hour_delay_stats", "2013-01")
    flights = hand_made.execute(
        "select origin, sched_dep_local, sched_dep_utc, dep_delay, delayed_15, cancelled from fct_flights"
    ).df()
    keys = {origin_hour_key(o, t) for o, t in zip(flights["origin"], flights["sched_dep_local"], strict=True)}
    # Local hours (EST = UTC-5), never the UTC ones (EWR-05, EWR-12, ..., EWR-03 for flight 4).
    assert keys == {"EWR-00", "EWR-07", "EWR-09", "EWR-15", "EWR-22", "EWR-23", "JFK-07"}
    assert set(stats["origin_hour"]) == keys
    assert not stats.duplicated(["origin_hour", "event_timestamp"]).any()

    # Hand-written rows, as for the routes. EWR-22 is flight 4 only (Jan 1 22:00 local, known Jan 2 06:00).
    assert stats.loc[stats["origin_hour"] == "EWR-22", "event_timestamp"].min() == pd.Timestamp(
        "2013-01-03 05:00"
    )
    ewr22 = _at(stats, "origin_hour", "EWR-22", "2013-01-03 05:00")
    assert ewr22["origin_hour_flights_28d"] == 1
    assert ewr22["origin_hour_dep_delay_mean_28d"] == pytest.approx(180.0)
    assert ewr22["origin_hour_delay_rate_28d"] == pytest.approx(1.0)
    ewr07 = _at(stats, "origin_hour", "EWR-07", "2013-01-29 05:00")  # T-28d = Jan 1 05:00: flight 1 inside
    assert ewr07["origin_hour_flights_28d"] == 1
    assert ewr07["origin_hour_dep_delay_mean_28d"] == pytest.approx(30.0)
    assert ewr07["origin_hour_delay_rate_28d"] == pytest.approx(1.0)
    assert stats.loc[stats["origin_hour"] == "EWR-07", "event_timestamp"].max() == pd.Timestamp(
        "2013-01-29 05:00"
    )
    # EWR-15 holds only the cancelled flight 3: counted, but no known delay.
    ewr15 = _at(stats, "origin_hour", "EWR-15", "2013-01-02 05:00")
    assert ewr15["origin_hour_flights_28d"] == 1
    assert pd.isna(ewr15["origin_hour_dep_delay_mean_28d"]) and pd.isna(ewr15["origin_hour_delay_rate_28d"])

    # Recompute every row by hand from the flights: those known in [T - 28 days, T).
    known = flights["sched_dep_utc"] + pd.to_timedelta(
        flights["dep_delay"].where(~flights["cancelled"]).fillna(0), unit="m"
    )
    for _, row in stats.iterrows():
        origin, hour = row["origin_hour"].split("-")
        mine = flights[
            (flights["origin"] == origin)
            & (flights["sched_dep_local"].dt.hour == int(hour))
            & (known < row["event_timestamp"])
            & (known >= row["event_timestamp"] - pd.Timedelta(days=28))
        ]
        label = f"{row['origin_hour']} at {row['event_timestamp']}"
        assert row["origin_hour_flights_28d"] == len(mine) > 0, label
        outcomes = mine[mine["delayed_15"].notna()]
        if outcomes.empty:  # only cancelled flights: no delay is known, both stats are null
            assert pd.isna(row["origin_hour_dep_delay_mean_28d"]), label
            assert pd.isna(row["origin_hour_delay_rate_28d"]), label
        else:
            expected_rate = outcomes["delayed_15"].astype(float).mean()
            assert row["origin_hour_delay_rate_28d"] == pytest.approx(expected_rate), label
            expected_mean = outcomes["dep_delay"].mean()
            assert row["origin_hour_dep_delay_mean_28d"] == pytest.approx(expected_mean), label


@pytest.mark.parametrize(
    "months",
    [["2013-01", "2013-02", "2013-03"], ["2013-03", "2013-01"]],
    ids=["contiguous", "with-a-gap"],
)
def test_a_range_writes_the_partitions_of_month_by_month(
    hand_made: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, months: list[str]
) -> None:
    # Flights at month ends, the last one in the night DST starts (Mar 10 07:00 UTC), give every month
    # trailing rows; weather has January and February rows only, so March writes no weather file.
    later = pd.DataFrame(
        [
            fct_row(8, "2013-02-01 04:30", 20.0),  # Jan 31 23:30 local
            fct_row(9, "2013-02-28 23:00", 5.0, carrier="UA", origin="JFK", dest="LAX"),
            fct_row(10, "2013-03-10 06:30", 40.0),  # 01:30 EST, half an hour before the change
        ]
    )
    hand_made.register("_later", later)
    hand_made.execute("insert into fct_flights by name select * from _later")
    hand_made.unregister("_later")

    by_month, as_range = tmp_path / "by_month", tmp_path / "range"
    expected = {month: build_feature_tables(hand_made, by_month, month) for month in sorted(months)}
    written: list[tuple[str, str]] = []
    write = compute.write_parquet_partition

    def recording(frame: pd.DataFrame, root: Path, table: str, month_key: str) -> Path:
        written.append((table, month_key))
        return write(frame, root, table, month_key)

    monkeypatch.setattr(compute, "write_parquet_partition", recording)
    counts = build_feature_tables_months(hand_made, as_range, months)

    assert list(counts) == months and counts == {month: expected[month] for month in months}
    assert all(counts[month]["carrier_delay_stats"] > 0 for month in months)
    assert [partition for table, partition in written if table == "plane_profile"] == ["static"]
    files = sorted(p.relative_to(by_month).as_posix() for p in by_month.rglob("*.parquet"))
    assert files == sorted(p.relative_to(as_range).as_posix() for p in as_range.rglob("*.parquet"))
    assert "features/origin_weather/month_key=2013-03/data.parquet" not in files
    for f in files:
        assert pq.read_schema(as_range / f).equals(pq.read_schema(by_month / f), check_metadata=True), f
        pd.testing.assert_frame_equal(
            pd.read_parquet(as_range / f), pd.read_parquet(by_month / f), check_exact=True
        )


def test_departure_keys_follow_the_local_clock_and_utc() -> None:
    # 05:30 local on the day DST starts is 09:30 UTC (a day earlier it is 10:30).
    assert departure_keys("EWR", datetime(2013, 3, 10, 5, 30)) == {
        "origin_utc_hour": "EWR-2013-03-10T09",
        "origin_hour": "EWR-05",
        "origin_slot": "EWR-2013-03-10T09:30",
    }
    assert departure_keys("EWR", datetime(2013, 3, 9, 5, 30))["origin_utc_hour"] == "EWR-2013-03-09T10"
    # An offset-aware departure is the same instant, wherever its offset.
    aware = datetime(2013, 1, 1, 10, 15, tzinfo=UTC)
    assert departure_keys("JFK", aware) == {
        "origin_utc_hour": "JFK-2013-01-01T10",
        "origin_hour": "JFK-05",
        "origin_slot": "JFK-2013-01-01T10:15",
    }
