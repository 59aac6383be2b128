"""Flights as Feast entity rows: the join keys and timestamp every consumer of the features uses.

Training (labelled flights) and batch scoring read the same frame from ``fct_flights``, so the keys
(including the derived ``origin_hour`` and ``origin_utc_hour``) are built in one place; ``cancelled`` and ``delayed_15`` come along
as outcome columns, never as features.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from hybridops.features.compute import ORIGIN_HOUR_SQL, ORIGIN_UTC_HOUR_SQL

FLIGHT_ENTITY_COLUMNS = [
    "flight_id",
    "month_key",
    "origin",
    "carrier",
    "route",
    "tailnum",
    "origin_hour",
    "origin_utc_hour",
    "event_timestamp",
]
OUTCOME_COLUMNS = ["cancelled", "delayed_15"]

_FLIGHT_ENTITIES_SQL = f"""
    select flight_id, month_key, origin, carrier, route, tailnum,
           {ORIGIN_HOUR_SQL} as origin_hour,
           {ORIGIN_UTC_HOUR_SQL} as origin_utc_hour,
           cast(sched_dep_utc as timestamp) as event_timestamp,
           cancelled, delayed_15
    from fct_flights
    where list_contains(?, month_key)
    order by sched_dep_utc, flight_id
"""


def flight_entities(con: duckdb.DuckDBPyConnection, months: list[str]) -> pd.DataFrame:
    """Every flight of ``months`` (cancelled ones included), in departure order, with its outcome."""
    return con.execute(_FLIGHT_ENTITIES_SQL, [list(months)]).df()
