"""Flights as Feast entity rows: the join keys and timestamp every consumer of the features uses.

Training (labelled flights) and batch scoring read the same frame from ``fct_flights``, so the keys
(including the derived ``origin_hour``, ``origin_utc_hour`` and ``origin_slot``) are built in one place;
``cancelled`` and ``delayed_15`` come along as outcome columns, never as features; ``dest`` and
``sched_dep_utc`` are the request columns of the request-time features (``hybridops.features.request``).

``event_timestamp`` is the flight's as-of time, ``sched_dep_utc - model.horizon_minutes``: Feast's
point-in-time join returns, for every view, the latest value stamped at or before it (within the view's
ttl), so no feature of training or batch scoring is known later than the horizon before departure.
"""

from __future__ import annotations

from typing import Literal

import duckdb
import pandas as pd
import pyarrow as pa

from hybridops.features.keys import (
    DEFAULT_HORIZON_MINUTES,
    ORIGIN_HOUR_SQL,
    ORIGIN_SLOT_SQL,
    ORIGIN_UTC_HOUR_SQL,
)

FLIGHT_ENTITY_COLUMNS = [
    "flight_id",
    "month_key",
    "origin",
    "carrier",
    "dest",
    "route",
    "tailnum",
    "origin_hour",
    "origin_utc_hour",
    "origin_slot",
    "sched_dep_utc",
    "event_timestamp",
]
OUTCOME_COLUMNS = ["cancelled", "delayed_15"]

# pandas' Arrow-backed string dtype: a column converted from Arrow shares its buffers instead of holding
# one Python object per value (8 string columns of a year of flights cost ~0.3 s to convert to objects).
STRING_DTYPE = pd.StringDtype("pyarrow")

_ORDER_BY = {"departure": "sched_dep_utc, flight_id", "flight_id": "flight_id"}

_FLIGHT_ENTITIES_SQL = f"""
    select flight_id, month_key, origin, carrier, dest, route, tailnum,
           {ORIGIN_HOUR_SQL} as origin_hour,
           {ORIGIN_UTC_HOUR_SQL} as origin_utc_hour,
           {ORIGIN_SLOT_SQL} as origin_slot,
           cast(sched_dep_utc as timestamp) as sched_dep_utc,
           cast(sched_dep_utc as timestamp) - to_minutes(cast(? as bigint)) as event_timestamp,
           cancelled, delayed_15
    from fct_flights
    where list_contains(?, month_key)
    order by {{order_by}}
"""


def arrow_string_types(arrow_type: pa.DataType) -> pd.StringDtype | None:
    """``types_mapper`` for ``pyarrow.Table.to_pandas``: Arrow strings become ``string[pyarrow]`` columns.

    Takes precedence over the pandas metadata of a Parquet file (which would turn a ``string`` column
    into Python-backed strings); every other type converts as usual.
    """
    return STRING_DTYPE if arrow_type in (pa.string(), pa.large_string()) else None


def flight_entity_table(
    con: duckdb.DuckDBPyConnection,
    months: list[str],
    order: Literal["departure", "flight_id"] = "departure",
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
) -> pa.Table:
    """Every flight of ``months`` (cancelled ones included) with its outcome, as an Arrow table.

    Args:
        con: Warehouse connection.
        months: Month keys (``YYYY-MM``) to read.
        order: ``departure`` (scheduled departure, then ``flight_id``) or ``flight_id``.
        horizon_minutes: ``model.horizon_minutes``; ``event_timestamp`` is the departure minus it.
    """
    sql = _FLIGHT_ENTITIES_SQL.format(order_by=_ORDER_BY[order])
    # A relation, not a DB-API result: DuckDB hands its Arrow batches over without another copy.
    return con.sql(sql, params=[horizon_minutes, list(months)]).to_arrow_table()


def flight_entities(
    con: duckdb.DuckDBPyConnection, months: list[str], horizon_minutes: int = DEFAULT_HORIZON_MINUTES
) -> pd.DataFrame:
    """Every flight of ``months`` (cancelled ones included), in departure order, with its outcome."""
    sql = _FLIGHT_ENTITIES_SQL.format(order_by=_ORDER_BY["departure"])
    return con.execute(sql, [horizon_minutes, list(months)]).df()
