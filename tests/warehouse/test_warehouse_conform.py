"""conform_flights / build_fct_flights on the hand-made mini warehouse (see conftest.MINI_*)."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hybridops.warehouse.conform import (
    FCT_FLIGHTS_COLUMNS,
    WEATHER_COLUMNS,
    build_fct_flights,
    conform_flights,
)


def _by_id(frame: pd.DataFrame) -> dict[str, dict[str, object]]:
    return {str(row["flight_id"]): row for row in frame.to_dict("records")}


def _is_null(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def test_columns_are_exactly_the_contract(mini_con: duckdb.DuckDBPyConnection) -> None:
    frame = conform_flights(mini_con, "2013-03")
    assert tuple(frame.columns) == FCT_FLIGHTS_COLUMNS
    assert FCT_FLIGHTS_COLUMNS[:3] == ("flight_id", "month_key", "flight_date")
    assert set(WEATHER_COLUMNS) <= set(FCT_FLIGHTS_COLUMNS)
    assert len(set(FCT_FLIGHTS_COLUMNS)) == len(FCT_FLIGHTS_COLUMNS)


def test_one_row_per_flight_despite_duplicate_looking_rows(mini_con: duckdb.DuckDBPyConnection) -> None:
    # Two AA 100 flights at 05:30 on 2013-03-10 (JFK and LGA), the N1 plane and B6 airline twice.
    march = conform_flights(mini_con, "2013-03")
    november = conform_flights(mini_con, "2013-11")
    assert len(march) == 5
    assert len(november) == 2
    assert march["flight_id"].is_unique
    assert november["flight_id"].is_unique
    assert set(march["month_key"]) == {"2013-03"}
    source = mini_con.execute("select count(*) from flights where month_key = '2013-03'").fetchall()
    assert len(march) == source[0][0]


def test_flight_id_route_and_order(mini_con: duckdb.DuckDBPyConnection) -> None:
    frame = conform_flights(mini_con, "2013-03")
    assert frame["flight_id"].tolist() == [
        "2013-03-09_AA_100_JFK_0530",
        "2013-03-10_UA_5_EWR_0005",  # zero-padded hhmm
        "2013-03-10_AA_100_JFK_0530",
        "2013-03-10_AA_100_LGA_0530",
        "2013-03-31_UA_5_EWR_2359",  # local date, although UTC is already April
    ]
    assert frame["route"].tolist() == ["JFK-MIA", "EWR-ORD", "JFK-MIA", "LGA-MIA", "EWR-ORD"]
    assert frame["flight_date"].tolist() == [
        date(2013, 3, 9),
        date(2013, 3, 10),
        date(2013, 3, 10),
        date(2013, 3, 10),
        date(2013, 3, 31),
    ]


@pytest.mark.parametrize(
    ("month_key", "flight_id", "local", "utc"),
    [
        ("2013-03", "2013-03-09_AA_100_JFK_0530", "2013-03-09 05:30", "2013-03-09 10:30"),  # EST
        ("2013-03", "2013-03-10_UA_5_EWR_0005", "2013-03-10 00:05", "2013-03-10 05:05"),  # before 02:00
        ("2013-03", "2013-03-10_AA_100_JFK_0530", "2013-03-10 05:30", "2013-03-10 09:30"),  # EDT
        ("2013-03", "2013-03-31_UA_5_EWR_2359", "2013-03-31 23:59", "2013-04-01 03:59"),
        ("2013-11", "2013-11-02_B6_7_JFK_0520", "2013-11-02 05:20", "2013-11-02 09:20"),  # EDT
        ("2013-11", "2013-11-03_B6_7_JFK_0520", "2013-11-03 05:20", "2013-11-03 10:20"),  # EST again
    ],
)
def test_sched_dep_local_and_utc_are_dst_correct(
    mini_con: duckdb.DuckDBPyConnection, month_key: str, flight_id: str, local: str, utc: str
) -> None:
    row = _by_id(conform_flights(mini_con, month_key))[flight_id]
    assert row["sched_dep_local"] == pd.Timestamp(local)
    assert row["sched_dep_utc"] == pd.Timestamp(utc)


def test_utc_conversion_ignores_the_session_time_zone(mini_con: duckdb.DuckDBPyConnection) -> None:
    mini_con.execute("set TimeZone = 'Asia/Tokyo'")
    row = _by_id(conform_flights(mini_con, "2013-03"))["2013-03-10_AA_100_JFK_0530"]
    assert row["sched_dep_utc"] == pd.Timestamp("2013-03-10 09:30")


def test_weather_joins_at_the_origin_and_scheduled_utc_hour(mini_con: duckdb.DuckDBPyConnection) -> None:
    rows = _by_id(conform_flights(mini_con, "2013-03"))
    assert rows["2013-03-09_AA_100_JFK_0530"]["temp"] == 30.0
    assert rows["2013-03-10_AA_100_JFK_0530"]["temp"] == 35.0  # not the 10:00 decoy (99)
    assert rows["2013-03-10_AA_100_LGA_0530"]["temp"] == 77.0  # LGA's weather, not JFK's
    assert rows["2013-03-31_UA_5_EWR_2359"]["temp"] == 41.0  # weather row of the next month
    assert rows["2013-03-10_AA_100_JFK_0530"]["pressure"] == 1012.0
    assert _is_null(rows["2013-03-10_AA_100_JFK_0530"]["wind_gust"])
    nov = _by_id(conform_flights(mini_con, "2013-11"))
    assert nov["2013-11-02_B6_7_JFK_0520"]["temp"] == 50.0
    assert nov["2013-11-03_B6_7_JFK_0520"]["temp"] == 45.0  # not the 09:00 decoy (98)


def test_missing_weather_gives_nulls_not_dropped_rows(mini_con: duckdb.DuckDBPyConnection) -> None:
    rows = _by_id(conform_flights(mini_con, "2013-03"))
    row = rows["2013-03-10_UA_5_EWR_0005"]  # no EWR weather at 05:00 UTC
    for column in WEATHER_COLUMNS:
        assert _is_null(row[column]), column


def test_planes_and_airlines(mini_con: duckdb.DuckDBPyConnection) -> None:
    rows = _by_id(conform_flights(mini_con, "2013-03"))
    known = rows["2013-03-10_AA_100_JFK_0530"]
    assert (known["plane_year"], known["plane_seats"], known["plane_engines"]) == (2000, 100, 2)
    assert known["plane_manufacturer"] == "BOEING"
    assert known["carrier_name"] == "American Airlines Inc."
    for flight_id in ("2013-03-10_UA_5_EWR_0005", "2013-03-31_UA_5_EWR_2359"):  # unknown / null tailnum
        row = rows[flight_id]
        for column in ("plane_year", "plane_seats", "plane_engines", "plane_manufacturer"):
            assert _is_null(row[column]), (flight_id, column)
        assert row["carrier_name"] == "United Air Lines Inc."
    assert rows["2013-03-10_UA_5_EWR_0005"]["tailnum"] == "NUNKNOWN"
    assert _is_null(rows["2013-03-31_UA_5_EWR_2359"]["tailnum"])


def test_cancelled_and_delayed_15(mini_con: duckdb.DuckDBPyConnection) -> None:
    rows = _by_id(conform_flights(mini_con, "2013-03"))
    expected = {
        "2013-03-09_AA_100_JFK_0530": (False, False),  # 10 min
        "2013-03-10_AA_100_JFK_0530": (False, True),  # 20 min
        "2013-03-10_AA_100_LGA_0530": (True, None),  # cancelled
        "2013-03-10_UA_5_EWR_0005": (False, False),  # -3 min
        "2013-03-31_UA_5_EWR_2359": (False, True),  # exactly 15 min
    }
    for flight_id, (cancelled, delayed) in expected.items():
        row = rows[flight_id]
        assert bool(row["cancelled"]) is cancelled, flight_id
        if delayed is None:
            assert _is_null(row["delayed_15"]), flight_id
        else:
            assert bool(row["delayed_15"]) is delayed, flight_id
    cancelled_row = rows["2013-03-10_AA_100_LGA_0530"]
    assert _is_null(cancelled_row["dep_delay"]) and _is_null(cancelled_row["arr_delay"])
    assert rows["2013-03-31_UA_5_EWR_2359"]["dep_delay"] == 15.0
    assert _is_null(rows["2013-03-31_UA_5_EWR_2359"]["arr_delay"])


def test_build_is_idempotent_and_typed(mini_con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    root = tmp_path / "parquet"
    assert build_fct_flights(mini_con, root, "2013-03") == 5
    assert build_fct_flights(mini_con, root, "2013-11") == 2
    assert build_fct_flights(mini_con, root, "2013-03") == 5  # re-run replaces the partition

    counts = dict(
        mini_con.execute("select month_key, count(*) from fct_flights group by 1 order by 1").fetchall()
    )
    assert counts == {"2013-03": 5, "2013-11": 2}
    ids = mini_con.execute("select count(distinct flight_id), count(*) from fct_flights").fetchall()
    assert ids == [(7, 7)]

    types = dict(mini_con.execute("select column_name, column_type from (describe fct_flights)").fetchall())
    assert list(types) == list(FCT_FLIGHTS_COLUMNS)
    assert types["flight_date"] == "DATE"
    assert types["sched_dep_utc"] == "TIMESTAMP"
    assert types["cancelled"] == "BOOLEAN" and types["delayed_15"] == "BOOLEAN"
    assert types["plane_year"] == "INTEGER"
    utc = mini_con.execute(
        "select sched_dep_utc from fct_flights where flight_id = '2013-11-03_B6_7_JFK_0520'"
    ).fetchall()
    assert utc == [(datetime(2013, 11, 3, 10, 20),)]

    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == [
        "fct_flights/month_key=2013-03/data.parquet",
        "fct_flights/month_key=2013-11/data.parquet",
    ]
    table = pq.read_table(root / "fct_flights" / "month_key=2013-03" / "data.parquet")
    assert table.num_rows == 5
    assert tuple(table.column_names) == FCT_FLIGHTS_COLUMNS
    assert str(table.schema.field("flight_date").type) == "date32[day]"
    assert str(table.schema.field("plane_manufacturer").type) == "string"


def test_unknown_month_gives_empty_frame(mini_con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    frame = conform_flights(mini_con, "2013-07")
    assert frame.empty
    assert tuple(frame.columns) == FCT_FLIGHTS_COLUMNS
