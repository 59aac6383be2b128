"""The warehouse interface, and the backend chosen by ``settings.warehouse.backend``.

Every step queries the warehouse with DuckDB SQL on a *session*, a DuckDB connection in which each
warehouse table is visible under its plain name; writes go through the backend, which decides what a
write means:

* ``duckdb`` (:mod:`hybridops.warehouse.db`): the tables live in one DuckDB file and a session is a
  connection to it (the laptop default, today's behaviour);
* ``lakehouse`` (:mod:`hybridops.warehouse.lakehouse`): the tables are Apache Iceberg tables in a SQL
  catalog, a session is an in-process DuckDB database where each table is a view over its current
  snapshot, and a write is an Iceberg commit (many processes at once).

A backend is imported only when selected (pyiceberg loads for ``lakehouse`` only), by the dotted path
in :data:`BACKEND_CLASS_FOR_TYPE`, as Feast picks its stores.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TypeAlias

import duckdb
import pandas as pd
import pyarrow as pa

from hybridops.settings import Settings

Frame: TypeAlias = pd.DataFrame | pa.Table | duckdb.DuckDBPyRelation
"""Rows to write: pandas, Arrow, or a DuckDB relation of the session (never leaves DuckDB on ``duckdb``)."""
Where: TypeAlias = dict[str, object] | None

BACKEND_CLASS_FOR_TYPE: dict[str, str] = {
    "duckdb": "hybridops.warehouse.db.DuckDBBackend",
    "lakehouse": "hybridops.warehouse.lakehouse.LakehouseBackend",
}


class WarehouseBackend(Protocol):
    """What a warehouse backend does. Sessions are DuckDB connections whatever the storage."""

    def session(
        self, read_only: bool = False, lock_wait_seconds: float | None = None
    ) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A DuckDB connection where every warehouse table is visible under its name.

        ``lock_wait_seconds`` bounds the wait for another process's lock where the backend has locks
        (None: its default).
        """

    def kept_open(self) -> AbstractContextManager[None]:
        """Keep what makes a session cheap open for the block (nothing, where nothing needs it)."""

    def exists(self) -> bool:
        """Whether anything was ever written (a read-only session can be opened)."""

    def replace_rows(
        self, con: duckdb.DuckDBPyConnection, table: str, frame: Frame, where: Where = None
    ) -> int:
        """Replace the rows of ``table`` matching ``where`` (all rows when None) with ``frame``, atomically."""

    def append_rows(self, con: duckdb.DuckDBPyConnection, table: str, frame: Frame) -> int:
        """Add ``frame``'s rows to ``table`` (created from the frame's schema on first write)."""

    def table_exists(self, con: duckdb.DuckDBPyConnection, table: str) -> bool:
        """Whether ``table`` is visible in the session."""


_backends: dict[tuple[str, str], WarehouseBackend] = {}
_backends_lock = threading.Lock()
# The backend of each open session that is not a plain DuckDB-file session (keyed by id: DuckDB
# connections take no attributes and no weak references); writes on other connections use DuckDB.
_session_backend: dict[int, WarehouseBackend] = {}


def backend(settings: Settings) -> WarehouseBackend:
    """The backend selected by ``settings.warehouse``, one instance per configuration and home."""
    key = (settings.warehouse.model_dump_json(), str(settings.home_dir))
    with _backends_lock:
        found = _backends.get(key)
        if found is None:
            module_name, class_name = BACKEND_CLASS_FOR_TYPE[settings.warehouse.backend].rsplit(".", 1)
            found = getattr(importlib.import_module(module_name), class_name)(settings)
            _backends[key] = found
    return found


@contextmanager
def session(
    settings: Settings, read_only: bool = False, lock_wait_seconds: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB session on the configured warehouse; writes on it go through its backend."""
    chosen = backend(settings)
    with chosen.session(read_only, lock_wait_seconds) as con:
        _session_backend[id(con)] = chosen
        try:
            yield con
        finally:
            _session_backend.pop(id(con), None)


def backend_of(con: duckdb.DuckDBPyConnection) -> WarehouseBackend | None:
    """The backend that opened ``con``, or None for a connection opened some other way."""
    return _session_backend.get(id(con))
