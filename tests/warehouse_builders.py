"""Builders of small hand-made DuckDB warehouses, shared by the test suites (features, training, inference,
serving): ``fct_flights`` rows, weather and planes frames, and a loader of the three tables.

``tests/`` is on sys.path (tests/conftest.py lives there), so every test folder can ``import
warehouse_builders``. The column list of ``fct_flights`` is the platform's own.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from hybridops.warehouse.conform import FCT_FLIGHTS_COLUMNS, WEATHER_COLUMNS

TIMEZONE = "America/New_York"
# fct_flights columns a warehouse may leave out when its tests read neither carriers, distances nor planes
DIMENSION_COLUMNS = (
    "carrier_name", "distance", "air_time", "plane_year", "plane_seats", "plane_engines", "plane_manufacturer",
)  # fmt: skip


def fct_row(
    n: int, sched_dep_utc: str | pd.Timestamp, dep_delay: float | None, carrier: str = "AA",
    origin: str = "EWR", dest: str = "IAH", tailnum: str | None = "N1", cancelled: bool = False, *,
    weather: float = 1.0, dimensions: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """One fct_flights row; local fields follow from the UTC schedule.

    ``weather`` fills the row's own weather copy; ``dimensions=False`` leaves out DIMENSION_COLUMNS.
    """
    utc = pd.Timestamp(sched_dep_utc)
    local = utc.tz_localize("UTC").tz_convert(TIMEZONE).tz_localize(None)
    values = {
        "flight_id": f"{local:%Y-%m-%d}_{carrier}_{n}_{origin}_{local:%H%M}",
        "month_key": f"{local:%Y-%m}", "flight_date": local.date(), "carrier": carrier,
        "carrier_name": carrier, "flight": n, "tailnum": tailnum, "origin": origin, "dest": dest,
        "route": f"{origin}-{dest}", "sched_dep_local": local, "sched_dep_utc": utc,
        "dep_delay": None if cancelled else dep_delay, "arr_delay": None if cancelled else dep_delay,
        "cancelled": cancelled,
        "delayed_15": None if cancelled else bool(dep_delay is not None and dep_delay >= 15),
        "distance": 1400.0, "air_time": 200.0, **dict.fromkeys(WEATHER_COLUMNS, weather), "plane_year": 2000,
        "plane_seats": 100, "plane_engines": 2, "plane_manufacturer": "X",
    }  # fmt: skip
    return {c: values[c] for c in FCT_FLIGHTS_COLUMNS if dimensions or c not in DIMENSION_COLUMNS}


def weather_frame(rows: list[tuple[str, Any, float]], *, calendar: bool = True) -> pd.DataFrame:
    """Weather rows from ``(origin, time_hour UTC, temp)``; the other measures derive from temp.

    ``calendar`` adds the local year, month, day and hour and the month_key (the raw weather layout).
    """
    utc = pd.to_datetime([t for _, t, _ in rows])
    temps = [v for _, _, v in rows]
    frame = pd.DataFrame(
        {
            "origin": [o for o, _, _ in rows], "time_hour": utc, "temp": temps,
            "dewp": [v - 10 for v in temps], "humid": 50.0, "wind_dir": 180.0, "wind_speed": 5.0,
            "wind_gust": None, "precip": 0.0, "pressure": 1010.0, "visib": 10.0,
        }
    )  # fmt: skip
    if not calendar:
        return frame
    local = [t.tz_localize("UTC").tz_convert(TIMEZONE) for t in utc]
    for position, part in enumerate(("year", "month", "day", "hour"), start=1):
        frame.insert(position, part, [getattr(t, part) for t in local])
    frame["month_key"] = [f"{t:%Y-%m}" for t in local]
    return frame[["origin", "year", "month", "day", "hour", *WEATHER_COLUMNS, "time_hour", "month_key"]]


def planes_frame(rows: list[tuple[str, int | None, int, int]], *, details: bool = True) -> pd.DataFrame:
    """Planes from ``(tailnum, year, seats, engines)``; ``details`` adds the descriptive columns."""
    records = [
        {"tailnum": t, "year": y, "type": "Fixed wing", "manufacturer": "X", "model": "M", "engines": e,
         "seats": s, "speed": None, "engine": "Turbo-fan"}
        for t, y, s, e in rows
    ]  # fmt: skip
    if not details:
        records = [{k: r[k] for k in ("tailnum", "year", "engines", "seats")} for r in records]
    return pd.DataFrame(records).astype({"year": "Int64"})


def load_tables(
    con: duckdb.DuckDBPyConnection, fct: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, *,
    weather_dtypes: dict[str, str] | None = None,
) -> None:  # fmt: skip
    """Create (or replace) the fct_flights, weather and planes tables from the frames."""
    fct = fct.astype({"dep_delay": "float64", "arr_delay": "float64", "delayed_15": "boolean"})
    if weather_dtypes:
        weather = weather.astype(weather_dtypes)
    for name, frame in {"fct_flights": fct, "weather": weather, "planes": planes}.items():
        con.register("_f", frame)
        con.execute(f"create or replace table {name} as select * from _f")
        con.unregister("_f")
    con.execute("alter table fct_flights alter sched_dep_utc type timestamp")
    con.execute("alter table weather alter time_hour type timestamp")
