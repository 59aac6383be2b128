"""The embedded DuckDB warehouse (backend ``duckdb``), and the warehouse functions every step calls.

:func:`connect` opens a session on the configured backend (given the settings) or on a DuckDB file (given
a path); :func:`replace_rows`, :func:`append_rows` and :func:`table_exists` act through the backend that
opened the connection (:mod:`hybridops.warehouse.backend`), DuckDB's own for any other connection.

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
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from hybridops.errors import HybridopsError
from hybridops.files import remove_stale_staged, staged_path
from hybridops.settings import Settings
from hybridops.warehouse import backend as _backend
from hybridops.warehouse import file_lock
from hybridops.warehouse.backend import Frame, Where

# A scrape by `hybridops exporter` holds a read lock for well under a second; a pipeline write waits it out.
LOCK_WAIT_SECONDS = 30.0

_kept: dict[Path, duckdb.DuckDBPyConnection] = {}
_kept_lock = threading.Lock()


def connect(
    target: Settings | Path, read_only: bool = False, lock_wait_seconds: float = LOCK_WAIT_SECONDS
) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """A warehouse session: on the backend ``settings.warehouse`` selects, or on the DuckDB file at a path.

    DuckDB lets one process write a file or several read it, never both at once: while another process
    holds it, the open is retried until ``lock_wait_seconds`` have passed.

    Raises:
        HybridopsError: the file stayed locked by another process.
    """
    if isinstance(target, Settings):
        return _backend.session(target, read_only, lock_wait_seconds)
    return _connect_file(target, read_only, lock_wait_seconds)


def kept_open(
    target: Settings | Path, lock_wait_seconds: float = LOCK_WAIT_SECONDS
) -> AbstractContextManager[None]:
    """Keep the warehouse open for the block (see :func:`keep_file_open`; other backends keep their own)."""
    if isinstance(target, Settings):
        return _backend.backend(target).kept_open()
    return keep_file_open(target, lock_wait_seconds)


def exists(settings: Settings) -> bool:
    """Whether the configured warehouse holds anything yet."""
    return _backend.backend(settings).exists()


class DuckDBBackend:
    """Backend ``duckdb``: the warehouse is the file ``settings.warehouse_db``."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.warehouse_db

    def session(
        self, read_only: bool = False, lock_wait_seconds: float | None = None
    ) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        wait = LOCK_WAIT_SECONDS if lock_wait_seconds is None else lock_wait_seconds
        return _connect_file(self.path, read_only, wait)

    def kept_open(self) -> AbstractContextManager[None]:
        return keep_file_open(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def replace_rows(
        self, con: duckdb.DuckDBPyConnection, table: str, frame: Frame, where: Where = None
    ) -> int:
        return _replace_rows(con, table, frame, where)

    def append_rows(self, con: duckdb.DuckDBPyConnection, table: str, frame: Frame) -> int:
        return _append_rows(con, table, frame)

    def table_exists(self, con: duckdb.DuckDBPyConnection, table: str) -> bool:
        return _table_exists(con, table)


@contextmanager
def _connect_file(
    db_path: Path, read_only: bool = False, lock_wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    kept = _kept.get(db_path.resolve())
    if kept is not None:
        # A read-only request gets a writable cursor: one database in one process has one configuration.
        con = kept.cursor()
        try:
            yield con
        finally:
            con.close()
        return
    if not read_only:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    # DuckDB's own exclusion between processes loses writes under contention (file_lock's docstring).
    with file_lock.held(db_path, not read_only, lock_wait_seconds):
        con = _open(db_path, read_only, lock_wait_seconds)
        try:
            yield con
        finally:
            con.close()


@contextmanager
def keep_file_open(db_path: Path, lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Keep the DuckDB file open in this process for the block: :func:`connect` hands out cursors on it.

    Nested or concurrent blocks on the same file share the first one's database, which closes (and
    checkpoints once) when that block ends.

    Raises:
        HybridopsError: the file stayed locked by another process.
    """
    key = db_path.resolve()
    with _kept_lock:
        owner = key not in _kept
    if not owner:
        yield
        return
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock.held(db_path, True, lock_wait_seconds):
        with _kept_lock:
            owner = key not in _kept
            if owner:
                _kept[key] = _open(db_path, False, lock_wait_seconds)
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
    """Whether ``table`` is visible on the warehouse session ``con``."""
    owner = _backend.backend_of(con)
    return owner.table_exists(con, table) if owner is not None else _table_exists(con, table)


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: Frame,
    where: Where = None,
) -> int:
    """Replace the rows of ``table`` matching ``where`` (all rows when None) with ``frame``.

    A ``where`` value that is a list matches any of its items (several partitions in one write). The
    table is created from the frame's schema on first write. Readers see the old rows or the new ones,
    never a mix. Returns the number of rows written.
    """
    owner = _backend.backend_of(con)
    if owner is not None:
        return owner.replace_rows(con, table, frame, where)
    return _replace_rows(con, table, frame, where)


def append_rows(con: duckdb.DuckDBPyConnection, table: str, frame: Frame) -> int:
    """Add the rows of ``frame`` to ``table`` (created from the frame's schema on first write)."""
    owner = _backend.backend_of(con)
    if owner is not None:
        return owner.append_rows(con, table, frame)
    return _append_rows(con, table, frame)


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    # fetchall, not fetchone: an unfinished result blocks a later register() on the same connection.
    # duckdb_tables(), not information_schema: the view costs ~25 ms a query on a warehouse of 30 tables
    rows = con.execute("select count(*) from duckdb_tables() where table_name = ?", [table]).fetchall()
    return bool(rows[0][0])


def _replace_rows(con: duckdb.DuckDBPyConnection, table: str, frame: Frame, where: Where) -> int:
    con.register("_incoming", frame)
    try:
        with transaction(con):
            _create_or_widen(con, table)
            if where:
                clause = " and ".join(
                    f'list_contains(?, "{col}")' if isinstance(value, list) else f'"{col}" = ?'
                    for col, value in where.items()
                )
                con.execute(f'delete from "{table}" where {clause}', list(where.values()))
            else:
                con.execute(f'delete from "{table}"')
            inserted = con.execute(f'insert into "{table}" by name select * from _incoming').fetchall()
    finally:
        con.unregister("_incoming")
    return int(inserted[0][0])


def _append_rows(con: duckdb.DuckDBPyConnection, table: str, frame: Frame) -> int:
    con.register("_incoming", frame)
    try:
        with transaction(con):
            _create_or_widen(con, table)
            inserted = con.execute(f'insert into "{table}" by name select * from _incoming').fetchall()
    finally:
        con.unregister("_incoming")
    return int(inserted[0][0])


def _create_or_widen(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Create ``table`` from ``_incoming``'s schema, or add the columns ``_incoming`` brings that it lacks."""
    if not _table_exists(con, table):
        con.execute(f'create table "{table}" as select * from _incoming limit 0')
        return
    have = {
        row[0]
        for row in con.execute(
            "select column_name from duckdb_columns() where table_name = ?", [table]
        ).fetchall()
    }
    for name, kind, *_ in con.execute("describe select * from _incoming").fetchall():
        if name not in have:
            con.execute(f'alter table "{table}" add column "{name}" {kind}')


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
    remove_stale_staged(target)  # what a writer killed mid-write left
    tmp = staged_path(target)
    try:
        frame.to_parquet(tmp, index=False)
        tmp.replace(target)  # atomic: readers never see half a file
    finally:
        tmp.unlink(missing_ok=True)
    return target
