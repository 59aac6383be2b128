"""``python -m hybridops.rehearsal.rows``: the row counts of the warehouse's fact and prediction tables,
read through the configured warehouse backend, printed as JSON. The rehearsal runs it with a run pod's
environment, as a client in the cluster would read the warehouse."""

from __future__ import annotations

import json

from hybridops.settings import load_settings
from hybridops.warehouse.db import connect, exists, table_exists

TABLES = ("fct_flights", "predictions")


def counts() -> dict[str, int]:
    settings = load_settings()
    if not exists(settings):
        return dict.fromkeys(TABLES, 0)
    with connect(settings, read_only=True) as con:
        return {
            table: int(con.execute(f"select count(*) from {table}").fetchone()[0])  # type: ignore[index]
            if table_exists(con, table)
            else 0
            for table in TABLES
        }


if __name__ == "__main__":
    print(json.dumps(counts()))
