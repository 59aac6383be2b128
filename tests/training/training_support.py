"""Warehouse builders for the training tests: hand-made rows and a small synthetic warehouse.

The row builders are those of tests/warehouse_builders.py, bound to the training layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
import warehouse_builders

from hybridops.features.compute import build_feature_tables
from hybridops.features.keys import DEFAULT_HORIZON_MINUTES
from hybridops.features.store import apply_definitions, feature_store
from hybridops.settings import Settings

# The shared builders, in the training layout: the warehouse's own weather copy is -1.0 (never a feature),
# fct_flights has no carrier/plane dimension columns, weather has no local calendar columns, planes no
# descriptive columns, and wind gusts load as floats.
fct_row = partial(warehouse_builders.fct_row, weather=-1.0, dimensions=False)
weather_frame = partial(warehouse_builders.weather_frame, calendar=False)
planes_frame = partial(warehouse_builders.planes_frame, details=False)
load_tables = partial(warehouse_builders.load_tables, weather_dtypes={"wind_gust": "float64"})


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


def feast_for(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    months: list[str],
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
) -> Any:
    """Build the feature tables of ``months`` and apply the definitions; returns the store."""
    for month in months:
        build_feature_tables(con, settings.parquet_dir, month, horizon_minutes)
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
        # Horizon 0: the planted signal is the weather of the departure's own hour, known only then.
        store = feast_for(connection, settings, SYNTHETIC_MONTHS, horizon_minutes=0)
        labelled = labelled_flights(connection, SYNTHETIC_MONTHS, horizon_minutes=0)
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
