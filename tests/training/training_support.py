"""Warehouse builders for the training tests: hand-made rows and a small synthetic warehouse.

The row builders follow tests/features/conftest.py (conftest modules of other folders are not importable).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from hybridops.features.compute import build_feature_tables
from hybridops.features.store import apply_definitions, feature_store
from hybridops.settings import Settings

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
        **dict.fromkeys(WEATHER_VALUES, -1.0),  # the warehouse's own weather copy: never a feature
    }


def weather_frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """Weather rows from ``(origin, time_hour UTC, temp)``."""
    times = pd.to_datetime([t for _, t, _ in rows])
    return pd.DataFrame(
        {
            "origin": [o for o, _, _ in rows], "time_hour": times, "temp": [v for _, _, v in rows],
            "dewp": [v - 10 for _, _, v in rows], "humid": 50.0, "wind_dir": 180.0, "wind_speed": 5.0,
            "wind_gust": None, "precip": 0.0, "pressure": 1010.0, "visib": 10.0,
        }
    )  # fmt: skip


def planes_frame(rows: list[tuple[str, int | None, int, int]]) -> pd.DataFrame:
    return pd.DataFrame([{"tailnum": t, "year": y, "engines": e, "seats": s} for t, y, s, e in rows]).astype(
        {"year": "Int64"}
    )


def load_tables(
    con: duckdb.DuckDBPyConnection, fct: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame
) -> None:
    fct = fct.astype({"dep_delay": "float64", "arr_delay": "float64", "delayed_15": "boolean"})
    weather = weather.astype({"wind_gust": "float64"})
    for name, frame in {"fct_flights": fct, "weather": weather, "planes": planes}.items():
        con.register("_f", frame)
        con.execute(f"create or replace table {name} as select * from _f")
        con.unregister("_f")
    con.execute("alter table fct_flights alter sched_dep_utc type timestamp")
    con.execute("alter table weather alter time_hour type timestamp")


def synthetic_warehouse(
    con: duckdb.DuckDBPyConnection, months: list[str], flights_per_day: int = 40, seed: int = 0
) -> pd.DataFrame:
    """Flights whose delay depends on the origin's precipitation and the carrier; hourly weather; planes.

    Returns the fct_flights frame that was loaded.
    """
    rng = np.random.default_rng(seed)
    origins, carriers, dests = ["EWR", "JFK", "LGA"], ["AA", "UA", "B6", "DL"], ["ATL", "ORD", "LAX"]
    effect = {"AA": -0.5, "UA": 0.0, "B6": 0.5, "DL": -1.0}
    first = pd.Timestamp(f"{months[0]}-01 05:00")
    last = pd.Timestamp(f"{months[-1]}-01") + pd.offsets.MonthBegin(1) + pd.Timedelta(hours=5)
    hours = pd.date_range(first - pd.Timedelta(hours=6), last + pd.Timedelta(hours=6), freq="h")
    weather = pd.DataFrame([(o, h) for o in origins for h in hours], columns=["origin", "time_hour"])
    n = len(weather)
    weather["temp"] = rng.normal(40, 10, n).round(1)
    weather["dewp"] = weather["temp"] - 10
    weather["humid"] = rng.uniform(30, 90, n).round(1)
    weather["wind_dir"] = 180.0
    weather["wind_speed"] = rng.uniform(0, 25, n).round(1)
    weather["wind_gust"] = np.where(weather["wind_speed"] > 15, weather["wind_speed"] * 1.3, np.nan)
    weather["precip"] = np.where(rng.uniform(size=n) < 0.2, rng.uniform(0, 1, n), 0.0).round(2)
    weather["pressure"] = rng.normal(1015, 5, n).round(1)
    weather["visib"] = rng.uniform(1, 10, n).round(1)

    days = pd.date_range(first, last - pd.Timedelta(hours=6), freq="D")
    rows = []
    precip = weather.set_index(["origin", "time_hour"])["precip"]
    number = 0
    for day in days:
        for _ in range(flights_per_day):
            number += 1
            origin = origins[rng.integers(3)]
            carrier = carriers[rng.integers(4)]
            dest = dests[rng.integers(3)]
            sched = day + pd.Timedelta(minutes=int(rng.integers(6 * 60, 23 * 60)))
            rain = precip.get((origin, sched.floor("h")), 0.0)
            logit = -1.5 + 4.0 * rain + effect[carrier]
            if rng.uniform() < 0.02:
                row = fct_row(number, str(sched), None, carrier, origin, dest, f"N{number % 7}", True)
            else:
                delayed = rng.uniform() < 1 / (1 + np.exp(-logit))
                delay = float(rng.integers(15, 120)) if delayed else float(rng.integers(-10, 14))
                row = fct_row(number, str(sched), delay, carrier, origin, dest, f"N{number % 7}")
            rows.append(row)
    fct = pd.DataFrame(rows)
    fct = fct[fct["month_key"].isin(months)].reset_index(drop=True)
    planes = planes_frame([(f"N{i}", 1995 + i, 100 + 10 * i, 2) for i in range(6)])  # N6 unknown
    load_tables(con, fct, weather, planes)
    return fct


def feast_for(con: duckdb.DuckDBPyConnection, settings: Settings, months: list[str]) -> Any:
    """Build the feature tables of ``months`` and apply the definitions; returns the store."""
    for month in months:
        build_feature_tables(con, settings.parquet_dir, month)
    store = feature_store(settings)
    apply_definitions(store, settings)
    return store


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


SYNTHETIC_MONTHS = ["2013-01", "2013-02", "2013-03"]


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three synthetic months in a warehouse, their feature tables applied to Feast, and the labels."""
    from hybridops.training.dataset import labelled_flights

    tmp = tmp_path_factory.mktemp("synthetic")
    settings = Settings(home=tmp / "home")
    connection = duckdb.connect(str(tmp / "warehouse.duckdb"))
    try:
        fct = synthetic_warehouse(connection, SYNTHETIC_MONTHS)
        store = feast_for(connection, settings, SYNTHETIC_MONTHS)
        labelled = labelled_flights(connection, SYNTHETIC_MONTHS)
    finally:
        connection.close()
    return {"settings": settings, "store": store, "labelled": labelled, "fct": fct}


FAST = {"min_rows": 100, "num_boost_round": 40}


@pytest.fixture(scope="session")
def synthetic_split(synthetic: dict[str, Any]) -> dict[str, Any]:
    """The synthetic training set, its split plan and the train/holdout frames."""
    from hybridops.settings import TrainingSettings
    from hybridops.training.dataset import build_training_set
    from hybridops.training.split import plan_split, split_frame

    settings = TrainingSettings(**FAST)  # type: ignore[arg-type]
    training_set = build_training_set(synthetic["store"], synthetic["labelled"].entities, settings)
    plan = plan_split(SYNTHETIC_MONTHS, settings.train_months)
    train, holdout = split_frame(training_set.frame, plan)
    return {"settings": settings, "set": training_set, "plan": plan, "train": train, "holdout": holdout}
