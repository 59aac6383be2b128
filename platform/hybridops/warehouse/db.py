"""The embedded DuckDB warehouse: connections and idempotent partition writes.

Every table that holds monthly data has a ``month_key`` column (``YYYY-MM``); a write replaces the rows of
the partitions it carries, inside one transaction, so re-running a month never duplicates rows.

Opening a DuckDB database costs about 35 ms whatever its size, and closing it after a write checkpoints
(0.1-0.3 ms per MB written); a pipeline run opens the warehouse a few hundred times. Inside
:func:`kept_open` every :func:`connect` of that file in this process is a cursor on one open database
instead: the same transactions, no open or checkpoint per call. The price is that another process (the
exporter) cannot read the file until the block ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from hybridops.errors import HybridopsError

# A scrape by `hybridops exporter` holds a read lock for well under a second; a pipeline write waits it out.
LOCK_WAIT_SECONDS = 30.0

_kept: dict[Path, duckdb.DuckDBPyConnection] = {}
_kept_lock = threading.Lock()


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
    kept = _kept.get(db_path.resolve())
    if kept is not None:
        # A read-only request gets a writable cursor: one database in one process has one configuration.
        con = kept.cursor()
    else:
        if not read_only:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        con = _open(db_path, read_only, lock_wait_seconds)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def kept_open(db_path: Path, lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Keep the warehouse open in this process for the block: :func:`connect` hands out cursors on it.

    Nested or concurrent blocks on the same file share the first one's database, which closes (and
    checkpoints once) when that block ends.

    Raises:
        HybridopsError: the file stayed locked by another process.
    """
    key = db_path.resolve()
    with _kept_lock:
        if key in _kept:
            owner = False
        else:
            db_path.parent.mkdir(parents=True, exist_ok=True)
            _kept[key] = _open(db_path, False, lock_wait_seconds)
            owner = True
    try:
        yield
    finally:
        if owner:
            with _kept_lock:
                _kept.pop(key).close()


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
    # duckdb_tables(), not information_schema: the view costs ~25 ms a query on a warehouse of 30 tables
    rows = con.execute("select count(*) from duckdb_tables() where table_name = ?", [table]).fetchall()
    return bool(rows[0][0])


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    where: dict[str, object] | None = None,
) -> int:
    """Replace the rows of ``table`` matching ``where`` (all rows when None) with ``frame``.

    A ``where`` value that is a list matches any of its items (several partitions in one write). The
    table is created from the frame's schema on first write. Returns the number of rows written.
    """
    con.register("_incoming", frame)
    try:
        with transaction(con):
            if not table_exists(con, table):
                con.execute(f'create table "{table}" as select * from _incoming limit 0')
            if where:
                clause = " and ".join(
                    f'list_contains(?, "{col}")' if isinstance(value, list) else f'"{col}" = ?'
                    for col, value in where.items()
                )
                con.execute(f'delete from "{table}" where {clause}', list(where.values()))
            else:
                con.execute(f'delete from "{table}"')
            con.execute(f'insert into "{table}" by name select * from _incoming')
    finally:
        con.unregister("_incoming")
    return len(frame)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction around the block: committed when it ends, rolled back if it raises."""
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


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
