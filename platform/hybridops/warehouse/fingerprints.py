"""Fingerprints of the warehouse tables the ML half reads, so another release can notice their changes.

A monthly table gives one fingerprint per month (row count and an order-independent hash of its rows), a
reference table one for the whole table. Equal fingerprints mean the same rows.
"""

from __future__ import annotations

import duckdb

from hybridops.warehouse.db import table_exists

MONTHLY = ("fct_flights", "weather")
REFERENCE = ("planes",)


def table_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """``{table: {month_key or "": fingerprint}}`` for the tables that exist."""
    found: dict[str, dict[str, str]] = {}
    for table in MONTHLY:
        if table_exists(con, table):
            rows = con.execute(
                f'select month_key, count(*), bit_xor(hash(t)) from "{table}" as t group by 1 order by 1'
            ).fetchall()
            found[table] = {str(month): f"{n}:{x}" for month, n, x in rows}
    for table in REFERENCE:
        if table_exists(con, table):
            n, x = con.execute(f'select count(*), bit_xor(hash(t)) from "{table}" as t').fetchone() or (0, 0)
            found[table] = {"": f"{n}:{x}"}
    return found
