"""The conformed flights fact: one row per flight with its origin weather, plane and airline.

``fct_flights`` joins the validated ``flights`` of one month with

* ``weather`` at the flight's origin and scheduled hour (``weather.time_hour = flights.time_hour``, both UTC),
* ``planes`` by ``tailnum`` and ``airlines`` by ``carrier``,

all as left joins, so a missing weather hour or an unknown plane gives NULL columns, never a dropped flight.
Each dimension is reduced to one row per join key before the join (deterministically), so duplicates in a
dimension can never multiply flights.

Clocks: ``year, month, day, sched_dep_time`` are New York local time. ``sched_dep_local`` is that wall-clock
time; ``sched_dep_utc`` is the same instant as naive UTC, converted with the IANA rules of
``America/New_York`` (DST-correct: 05:30 local is 10:30 UTC on 2013-03-09 and 09:30 UTC on 2013-03-10).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd

from hybridops.files import remove_stale_staged, staged_path
from hybridops.warehouse.db import replace_rows

TABLE = "fct_flights"
LOCAL_TZ = "America/New_York"

# Column name -> DuckDB type, in output order. The table is created from this schema (not inferred from
# the first frame), so a month where a column happens to be all NULL cannot give it the wrong type.
FCT_FLIGHTS_SCHEMA: dict[str, str] = {
    "flight_id": "VARCHAR",
    "month_key": "VARCHAR",
    "flight_date": "DATE",
    "carrier": "VARCHAR",
    "carrier_name": "VARCHAR",
    "flight": "INTEGER",
    "tailnum": "VARCHAR",
    "origin": "VARCHAR",
    "dest": "VARCHAR",
    "route": "VARCHAR",
    "sched_dep_local": "TIMESTAMP",
    "sched_dep_utc": "TIMESTAMP",
    "dep_delay": "DOUBLE",
    "arr_delay": "DOUBLE",
    "cancelled": "BOOLEAN",
    "delayed_15": "BOOLEAN",
    "distance": "DOUBLE",
    "air_time": "DOUBLE",
    "temp": "DOUBLE",
    "dewp": "DOUBLE",
    "humid": "DOUBLE",
    "wind_dir": "DOUBLE",
    "wind_speed": "DOUBLE",
    "wind_gust": "DOUBLE",
    "precip": "DOUBLE",
    "pressure": "DOUBLE",
    "visib": "DOUBLE",
    "plane_year": "INTEGER",
    "plane_seats": "INTEGER",
    "plane_engines": "INTEGER",
    "plane_manufacturer": "VARCHAR",
}

FCT_FLIGHTS_COLUMNS: tuple[str, ...] = tuple(FCT_FLIGHTS_SCHEMA)
_MONTH_KEY = re.compile(r"\d{4}-\d{2}")

WEATHER_COLUMNS: tuple[str, ...] = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)

_STRING_COLUMNS = tuple(name for name, kind in FCT_FLIGHTS_SCHEMA.items() if kind == "VARCHAR")

_WEATHER_ORDER = ", ".join(f"{col} nulls last" for col in WEATHER_COLUMNS)
_WEATHER_SELECT = ",\n        ".join(f"cast(w.{col} as double) as {col}" for col in WEATHER_COLUMNS)

# One query. Dimensions are deduplicated by their key with row_number() over a total order of their
# value columns, so the pick is deterministic even if the same key appears twice with different values.
_CONFORM_SQL = f"""
with f as (
    select
        *,
        cast(sched_dep_time as integer) as _hhmm,
        make_date(cast(year as integer), cast(month as integer), cast(day as integer)) as _date
    from flights
    where list_contains($months, month_key)
),
f2 as (
    select
        *,
        cast(_date as timestamp)
            + to_minutes(cast((_hhmm // 100) * 60 + _hhmm % 100 as bigint)) as _sched_local
    from f
),
w as (
    select *
    from weather
    qualify row_number() over (partition by origin, time_hour order by {_WEATHER_ORDER}) = 1
),
p as (
    select tailnum, year, seats, engines, manufacturer
    from planes
    where tailnum is not null
    qualify row_number() over (
        partition by tailnum
        order by year nulls last, seats nulls last, engines nulls last, manufacturer nulls last
    ) = 1
),
a as (
    select carrier, name
    from airlines
    qualify row_number() over (partition by carrier order by name nulls last) = 1
)
select
    strftime(f2._date, '%Y-%m-%d') || '_' || f2.carrier || '_' || cast(f2.flight as varchar) || '_'
        || f2.origin || '_' || lpad(cast(f2._hhmm as varchar), 4, '0') as flight_id,
    f2.month_key,
    f2._date as flight_date,
    f2.carrier,
    a.name as carrier_name,
    cast(f2.flight as integer) as flight,
    f2.tailnum,
    f2.origin,
    f2.dest,
    f2.origin || '-' || f2.dest as route,
    f2._sched_local as sched_dep_local,
    timezone('UTC', timezone('{LOCAL_TZ}', f2._sched_local)) as sched_dep_utc,
    cast(f2.dep_delay as double) as dep_delay,
    cast(f2.arr_delay as double) as arr_delay,
    f2.dep_time is null as cancelled,
    case when f2.dep_time is null then null else f2.dep_delay >= 15 end as delayed_15,
    cast(f2.distance as double) as distance,
    cast(f2.air_time as double) as air_time,
    {_WEATHER_SELECT},
    cast(p.year as integer) as plane_year,
    cast(p.seats as integer) as plane_seats,
    cast(p.engines as integer) as plane_engines,
    p.manufacturer as plane_manufacturer
from f2
left join w on w.origin = f2.origin and w.time_hour = f2.time_hour
left join p on p.tailnum = f2.tailnum
left join a on a.carrier = f2.carrier
order by sched_dep_utc, f2.carrier, f2.flight, f2.origin
"""
_ORDER = "sched_dep_utc, carrier, flight, origin"


def conform_flights(con: duckdb.DuckDBPyConnection, month_key: str) -> pd.DataFrame:
    """The conformed flights of one month, columns ``FCT_FLIGHTS_COLUMNS``, one row per ``flights`` row.

    Reads the validated ``flights``, ``weather``, ``planes`` and ``airlines`` tables. Rows are ordered by
    scheduled departure (UTC), carrier, flight number and origin.
    """
    frame = con.execute(_CONFORM_SQL, {"months": [month_key]}).df()
    frame = frame[list(FCT_FLIGHTS_COLUMNS)]
    # Stable, explicit dtypes: DATE as datetime.date (DuckDB and Parquet keep it a date, not a timestamp),
    # strings as pandas strings (an all-NULL month still writes a string column to Parquet).
    frame["flight_date"] = pd.to_datetime(frame["flight_date"]).dt.date.astype(object)
    for col in _STRING_COLUMNS:
        frame[col] = frame[col].astype("string")
    return frame


def build_fct_flights(con: duckdb.DuckDBPyConnection, parquet_root: Path, month_key: str) -> int:
    """Conform one month and write it to DuckDB ``fct_flights`` and Parquet; returns the row count.

    Idempotent: the month's partition is replaced in the table and the Parquet file is overwritten.
    """
    return build_fct_flights_months(con, parquet_root, [month_key])[month_key]


def build_fct_flights_months(
    con: duckdb.DuckDBPyConnection, parquet_root: Path, months: list[str]
) -> dict[str, int]:
    """:func:`build_fct_flights` for several months at once; returns the row count of each month.

    DuckDB computes the months as one relation (the query casts every column, so its types are
    ``FCT_FLIGHTS_SCHEMA`` even for a column that is all NULL) and the warehouse backend replaces the
    months with it in one write (on ``duckdb`` the rows never leave DuckDB), and each month's Parquet partition is a ``COPY`` of the table (through pandas,
    the conversions of 336k rows of strings and dates cost more than the join).
    """
    if any(not _MONTH_KEY.fullmatch(month) for month in months):
        raise ValueError(f"month keys must be YYYY-MM: {months}")
    columns = ", ".join(f'"{name}"' for name in FCT_FLIGHTS_COLUMNS)
    conformed = con.sql(f"select {columns} from ({_CONFORM_SQL})", params={"months": months})
    replace_rows(con, TABLE, conformed, {"month_key": months})
    counts = dict.fromkeys(months, 0)
    counts.update(
        con.execute(
            f'select month_key, count(*) from "{TABLE}" where list_contains(?, month_key) group by 1',
            [months],
        ).fetchall()
    )
    for month in months:
        _copy_partition(con, parquet_root, month)
    return counts


def _copy_partition(con: duckdb.DuckDBPyConnection, parquet_root: Path, month_key: str) -> Path:
    """Write the month's rows as ``<root>/fct_flights/month_key=<key>/data.parquet`` (atomic replace)."""
    target = Path(parquet_root) / TABLE / f"month_key={month_key}" / "data.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staged(target)  # what a writer killed mid-write left
    staged = staged_path(target)
    # COPY takes no parameters: the month key is checked (YYYY-MM) and the path quoted.
    path = str(staged).replace("'", "''")
    try:
        con.execute(
            f"copy (select * from \"{TABLE}\" where month_key = '{month_key}' order by {_ORDER}) "
            f"to '{path}' (format parquet)"
        )
        staged.replace(target)  # readers never see half a file
    finally:
        staged.unlink(missing_ok=True)
    return target
