"""The embedded DuckDB warehouse: connections and idempotent partition writes.

Every table that holds monthly data has a ``month_key`` column (``YYYY-MM``); a write replaces the rows of
the partitions it carries, inside one transaction, so re-running a month never duplicates rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from hybridops.errors import HybridopsError

# A scrape by `hybridops exporter` holds a read lock for well under a second; a pipeline write waits it out.
LOCK_WAIT_SECONDS = 30.0


@contextmanager
def connect(
    db_path: Path, read_only: bool = False, lock_wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, creating its folder on first use.

    DuckDB lets one process write a file or several read it, never both at once: while another process
    holds it, the open is retried until ``lock_wait_seconds`` have passed.

    Raises:
        HybridopsError: the file stayed locked by another process.
    """
    if not read_only:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    con = _open(db_path, read_only, lock_wait_seconds)
    try:
        yield con
    finally:
        con.close()


def _open(db_path: Path, read_only: bool, lock_wait_seconds: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + lock_wait_seconds
    pause = 0.02
    while True:
        try:
            return duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() + pause > deadline:
                raise HybridopsError(
                    f"the warehouse {db_path} is locked by another process (waited {lock_wait_seconds:.0f} s): "
                    "stop the other hybridops run or exporter that has it open, then retry"
                ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    # fetchall, not fetchone: an unfinished result blocks a later register() on the same connection.
    rows = con.execute(
        "select count(*) from information_schema.tables where table_name = ?", [table]
    ).fetchall()
    return bool(rows[0][0])


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    where: dict[str, object] | None = None,
) -> int:
    """Replace the rows of ``table`` matching ``where`` (all rows when None) with ``frame``.

    The table is created from the frame's schema on first write. Returns the number of rows written.
    """
    con.register("_incoming", frame)
    try:
        con.execute("begin transaction")
        if not table_exists(con, table):
            con.execute(f'create table "{table}" as select * from _incoming limit 0')
        if where:
            clause = " and ".join(f'"{col}" = ?' for col in where)
            con.execute(f'delete from "{table}" where {clause}', list(where.values()))
        else:
            con.execute(f'delete from "{table}"')
        con.execute(f'insert into "{table}" by name select * from _incoming')
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_incoming")
    return len(frame)


def read_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> pd.DataFrame:
    """Run a query and return a pandas frame."""
    return con.execute(sql, params or []).df()


def write_parquet_partition(frame: pd.DataFrame, root: Path, table: str, month_key: str) -> Path:
    """Write one month of a table as ``<root>/<table>/month_key=<key>/data.parquet`` (overwriting)."""
    target = root / table / f"month_key={month_key}" / "data.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(target)  # atomic: readers never see half a file
    return target
