"""Backend ``lakehouse``: the warehouse tables are Apache Iceberg tables in a SQL catalog (pyiceberg).

Writes are Iceberg commits: a commit swaps the table's metadata pointer in the catalog (a row in
SQLite or PostgreSQL) only if nobody moved it since the write began, so many processes can write at
once without a lock. A table that has a ``month_key`` column is partitioned by it (identity), and
:meth:`LakehouseBackend.replace_rows` is ``overwrite(frame, overwrite_filter=<where>)``: writers of
different months do not conflict, a conflicting commit is redone on the new snapshot (pyiceberg's own
retries, then :attr:`~hybridops.settings.LakehouseWarehouse.commit_attempts` of ours), and a re-run
replaces its partition in one snapshot. A write that fails leaves the table at its previous snapshot
(its data files are orphans no snapshot references).

Reads stay DuckDB SQL: a session is a cursor on one in-memory DuckDB database per process in which each
table of the namespace is a view over the data files of its current snapshot (``read_parquet`` with the
Iceberg field ids, so columns added later read as NULL from older files). Opening a session costs one
catalog query; a table's view is rebuilt only when its metadata location moved. A snapshot's files are
never rewritten, so a reader sees whole snapshots, never half a partition, and never blocks a writer.
Tables whose snapshot has delete files, or files DuckDB cannot open (an object store), are read through
pyiceberg (``scan().to_arrow()``) into the session database instead.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import duckdb
import pandas as pd
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from hybridops.errors import HybridopsError
from hybridops.settings import LakehouseWarehouse, Settings
from hybridops.warehouse.backend import Frame, Where

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

CATALOG_NAME = "hybridops"
PARTITION_COLUMN = "month_key"

# Iceberg primitive type (its string form) -> DuckDB type of the view column.
_DUCKDB_TYPES = {
    "boolean": "BOOLEAN",
    "int": "INTEGER",
    "long": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "string": "VARCHAR",
    "uuid": "UUID",
    "binary": "BLOB",
}


class LakehouseBackend:
    """Iceberg tables in ``settings.warehouse_catalog_url``, files under ``settings.warehouse_location``."""

    def __init__(self, settings: Settings) -> None:
        if not isinstance(settings.warehouse, LakehouseWarehouse):
            raise TypeError("LakehouseBackend needs settings.warehouse.backend = lakehouse")
        self.config = settings.warehouse
        self.catalog_url = _with_busy_timeout(settings.warehouse_catalog_url, self.config)
        self.location = _location_uri(settings.warehouse_location)
        self.namespace = self.config.namespace
        self._catalog: SqlCatalog | None = None
        self._db: duckdb.DuckDBPyConnection | None = None
        # Guards the catalog, the session database's DDL and what it shows: table -> metadata location.
        self._lock = threading.RLock()
        self._shown: dict[str, str] = {}
        self._kind: dict[str, str] = {}  # table -> "view" or "table" (an Arrow copy)

    # --- the interface ---------------------------------------------------------------------------------
    @contextmanager
    def session(
        self, read_only: bool = False, lock_wait_seconds: float | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on this process's DuckDB database, every table showing its current snapshot."""
        with self._lock:
            db = self._database()
            current = self._catalog_listing()
            with db.cursor() as ddl:
                for table in sorted(set(self._shown) - set(current)):
                    self._drop(ddl, table)
                for table, location in current.items():
                    if self._shown.get(table) != location:
                        self._show(ddl, table, location)
            con = db.cursor()
        try:
            yield con
        finally:
            con.close()

    def kept_open(self) -> AbstractContextManager[None]:
        return nullcontext()  # the session database lives as long as the process; the catalog has no lock

    def exists(self) -> bool:
        url = make_url(self.catalog_url)
        if url.get_backend_name() == "sqlite":
            return bool(url.database) and Path(str(url.database)).exists()
        return True

    def table_exists(self, con: duckdb.DuckDBPyConnection, table: str) -> bool:
        rows = con.execute(
            "select count(*) from (select view_name as name from duckdb_views() where not internal "
            "union all select table_name from duckdb_tables()) where name = ?",
            [table],
        ).fetchall()
        return bool(rows[0][0])

    def replace_rows(
        self, con: duckdb.DuckDBPyConnection, table: str, frame: Frame, where: Where = None
    ) -> int:
        data = to_arrow(frame)
        condition = overwrite_filter(where)
        written = self._commit(table, data, lambda tbl: _overwrite(tbl, data, condition))
        self._refresh(con, table, written)
        return data.num_rows

    def append_rows(self, con: duckdb.DuckDBPyConnection, table: str, frame: Frame) -> int:
        data = to_arrow(frame)
        written = self._commit(table, data, lambda tbl: tbl.append(data))
        self._refresh(con, table, written)
        return data.num_rows

    # --- the catalog -----------------------------------------------------------------------------------
    def catalog(self) -> SqlCatalog:
        """The SQL catalog, its tables and the namespace created on first use (racing processes tolerated)."""
        with self._lock:
            if self._catalog is None:
                self._catalog = self._open_catalog()
            return self._catalog

    def _open_catalog(self) -> SqlCatalog:
        from pyiceberg.catalog.sql import SqlCatalog

        url = make_url(self.catalog_url)
        if url.get_backend_name() == "sqlite" and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        if self.location.startswith("file:"):
            # A reader on a read-only mount (the exporter) needs no folder of its own: tolerated.
            with contextlib.suppress(OSError):
                Path(_local_path(self.location)).mkdir(parents=True, exist_ok=True)
        # Two processes opening a new catalog both see its tables missing and both create them: the loser
        # fails on "already exists" (an OperationalError, ProgrammingError or IntegrityError by driver), and
        # opening again finds them.
        for attempt in range(5):
            try:
                catalog = SqlCatalog(CATALOG_NAME, uri=self.catalog_url, warehouse=self.location)
                if not catalog.namespace_exists(self.namespace):
                    # IntegrityError: another process created it between pyiceberg's check and its insert.
                    with contextlib.suppress(IntegrityError):
                        catalog.create_namespace_if_not_exists(self.namespace)
                return catalog
            except (OperationalError, ProgrammingError, IntegrityError) as exc:
                if attempt == 4:
                    raise HybridopsError(
                        f"cannot open the lakehouse catalog {url.render_as_string(hide_password=True)}: {exc}"
                    ) from exc
                time.sleep(0.05 * (attempt + 1) + random.uniform(0, 0.05))
        raise AssertionError("unreachable")

    def _catalog_listing(self) -> dict[str, str]:
        """Every table of the namespace with its current metadata location, in one catalog query."""
        from pyiceberg.catalog.sql import IcebergTables

        catalog = self.catalog()
        query = select(IcebergTables.table_name, IcebergTables.metadata_location).where(
            IcebergTables.catalog_name == CATALOG_NAME, IcebergTables.table_namespace == self.namespace
        )
        with catalog.engine.connect() as connection:
            return {name: location for name, location in connection.execute(query) if location}

    def _commit(self, table: str, data: pa.Table, write: Any) -> Table:
        """Run ``write`` on the table (created or evolved to fit ``data``) until a commit lands."""
        from pyiceberg.exceptions import CommitFailedException, ValidationException

        attempts = self.config.commit_attempts
        for attempt in range(attempts):
            try:
                tbl = self._table_for(table, data.schema)
                write(tbl)
                return tbl
            # ValidationException: another writer added rows this write replaces (two writers of the whole
            # table, or of one partition) after it began; redone on the new snapshot, the last one wins.
            except (CommitFailedException, ValidationException, OperationalError) as exc:
                if isinstance(exc, OperationalError) and "locked" not in str(exc).lower():
                    raise
                if attempt == attempts - 1:
                    raise HybridopsError(
                        f"the lakehouse table {self.namespace}.{table} kept changing under this write "
                        f"({attempts} attempts): {exc}; retry the step, or raise "
                        "warehouse.commit_attempts"
                    ) from exc
                wait = min(self.config.commit_min_wait_ms * 2**attempt, self.config.commit_max_wait_ms)
                log.info("lakehouse commit of %s lost a race (attempt %d), retrying", table, attempt + 1)
                time.sleep((wait + random.uniform(0, 0.1 * wait)) / 1000)
        raise AssertionError("unreachable")

    def _table_for(self, table: str, incoming: pa.Schema) -> Table:
        """The table, created from ``incoming`` on first write and given its new columns on later ones."""
        from pyiceberg.exceptions import NoSuchTableError

        catalog = self.catalog()
        identifier = (self.namespace, table)
        try:
            tbl = catalog.load_table(identifier)
        except NoSuchTableError:
            schema = iceberg_schema(incoming)
            tbl = catalog.create_table_if_not_exists(
                identifier,
                schema,
                partition_spec=_partition_spec(schema),
                properties=self._table_properties(),
            )
        current = {field.name: field.field_type for field in tbl.schema().fields}
        if any(current.get(field.name) != field.field_type for field in iceberg_schema(incoming).fields):
            try:
                with tbl.update_schema() as update:  # new columns; int -> long and float -> double
                    update.union_by_name(incoming)
            except ValueError as exc:
                raise HybridopsError(
                    f"the rows written to lakehouse table {table} do not fit its schema: {exc}"
                ) from exc
        return tbl

    def _table_properties(self) -> dict[str, str]:
        return {
            "commit.retry.num-retries": str(self.config.commit_retries),
            "commit.retry.min-wait-ms": str(self.config.commit_min_wait_ms),
            "commit.retry.max-wait-ms": str(self.config.commit_max_wait_ms),
        }

    # --- the session database ----------------------------------------------------------------------------
    def _database(self) -> duckdb.DuckDBPyConnection:
        if self._db is None:
            self._db = duckdb.connect()
        return self._db

    def _refresh(self, con: duckdb.DuckDBPyConnection, table: str, written: Table) -> None:
        # On the writer's own cursor: inside its open transaction, if any, the new snapshot shows at once.
        with self._lock:
            self._show(con, table, written.metadata_location, written)

    def _drop(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        kind = self._kind.pop(table, None)
        if kind is not None:
            con.execute(f'drop {kind} if exists "{table}"')
        self._shown.pop(table, None)

    def _show(
        self, con: duckdb.DuckDBPyConnection, table: str, location: str, loaded: Table | None = None
    ) -> None:
        """Make ``table`` in the session database show the snapshot of the metadata at ``location``."""
        from pyiceberg.table import StaticTable

        tbl = loaded if loaded is not None else StaticTable.from_metadata(location)
        scan = tbl.scan()
        tasks = list(scan.plan_files())
        files = [task.file.file_path for task in tasks]
        readable = bool(tasks) and not any(task.delete_files for task in tasks)
        readable = readable and all(_is_local(path) for path in files)
        columns = _view_columns(tbl.schema()) if readable else None
        self._drop(con, table)
        if columns is not None:
            paths = ", ".join(_sql_string(_local_path(path)) for path in files)
            con.execute(
                f'create view "{table}" as select * from read_parquet([{paths}], schema = map {{{columns}}})'
            )
            self._kind[table] = "view"
        else:
            snapshot = scan.to_arrow()
            con.register("_iceberg_snapshot", snapshot)
            try:
                con.execute(f'create table "{table}" as select * from _iceberg_snapshot')
            finally:
                con.unregister("_iceberg_snapshot")
            self._kind[table] = "table"
        self._shown[table] = location


def _overwrite(tbl: Table, data: pa.Table, condition: BooleanExpression) -> None:
    with warnings.catch_warnings():
        # A first write of a partition deletes nothing: normal here, not worth a warning per write.
        warnings.filterwarnings("ignore", "Delete operation did not match any records", UserWarning)
        tbl.overwrite(data, overwrite_filter=condition)


# --- conversions ---------------------------------------------------------------------------------------
def to_arrow(frame: Frame) -> pa.Table:
    """``frame`` as an Arrow table of types Iceberg stores (microsecond timestamps, no unsigned ints...)."""
    if isinstance(frame, duckdb.DuckDBPyRelation):
        data = frame.to_arrow_table()
    elif isinstance(frame, pd.DataFrame):
        data = pa.Table.from_pandas(frame, preserve_index=False)
    else:
        data = frame
    fields = [pa.field(field.name, _storable(field.type), nullable=True) for field in data.schema]
    return data.cast(pa.schema(fields))


def _storable(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(kind):
        return _storable(kind.value_type)
    if pa.types.is_timestamp(kind):
        return pa.timestamp("us", tz="UTC" if kind.tz else None)
    if pa.types.is_null(kind):
        return pa.string()  # a column with no value yet: text (as DuckDB's VARCHAR for an all-NULL frame)
    if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_binary_view(kind) or pa.types.is_large_binary(kind):
        return pa.binary()
    if kind in (pa.int8(), pa.int16(), pa.uint8(), pa.uint16()):
        return pa.int32()
    if kind in (pa.uint32(), pa.uint64()):
        return pa.int64()
    if kind == pa.float16():
        return pa.float32()
    if kind == pa.date64():
        return pa.date32()
    if pa.types.is_time(kind):
        return pa.time64("us")
    return kind


def iceberg_schema(schema: pa.Schema) -> Schema:
    """The Iceberg schema of a flat Arrow schema, field ids in column order."""
    from pyiceberg.io.pyarrow import pyarrow_to_schema
    from pyiceberg.table.name_mapping import MappedField, NameMapping

    mapping = NameMapping([MappedField(field_id=i, names=[field.name]) for i, field in enumerate(schema, 1)])
    return pyarrow_to_schema(schema, name_mapping=mapping)


def _partition_spec(schema: Schema) -> Any:
    from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    if PARTITION_COLUMN not in schema.column_names:
        return UNPARTITIONED_PARTITION_SPEC
    source = schema.find_field(PARTITION_COLUMN).field_id
    return PartitionSpec(
        PartitionField(source_id=source, field_id=1000, transform=IdentityTransform(), name=PARTITION_COLUMN)
    )


def overwrite_filter(where: Where) -> BooleanExpression:
    """``replace_rows``'s ``where`` as an Iceberg expression (a list value matches any of its items)."""
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo, In

    if not where:
        return AlwaysTrue()
    terms: list[BooleanExpression] = []
    for column, value in where.items():
        if isinstance(value, list | tuple | set):
            terms.append(In(column, {_scalar(item) for item in value}))  # type: ignore[call-arg,misc]
        else:
            terms.append(EqualTo(column, _scalar(value)))  # type: ignore[call-arg,misc]
    return terms[0] if len(terms) == 1 else And(*terms)


def _scalar(value: object) -> Any:
    return value.item() if hasattr(value, "item") else value  # numpy scalars to Python


def _view_columns(schema: Schema) -> str | None:
    """The ``schema`` map of ``read_parquet`` (field id -> name and type), None for a nested schema."""
    from pyiceberg.types import DecimalType

    entries = []
    for field in schema.fields:
        kind = field.field_type
        if isinstance(kind, DecimalType):
            duck = f"DECIMAL({kind.precision}, {kind.scale})"
        elif str(kind) in _DUCKDB_TYPES:
            duck = _DUCKDB_TYPES[str(kind)]
        else:
            return None
        entries.append(
            f"{field.field_id}: {{name: {_sql_string(field.name)}, type: '{duck}', default_value: NULL}}"
        )
    return ", ".join(entries)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is_local(path: str) -> bool:
    return path.startswith("file:") or "://" not in path


def _local_path(uri: str) -> str:
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def _location_uri(location: str) -> str:
    return location if "://" in location else Path(location).expanduser().resolve().as_uri()


def _with_busy_timeout(url: str, config: LakehouseWarehouse) -> str:
    """A SQLite catalog waits for another process's write lock instead of failing at once."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or "timeout" in parsed.query:
        return url
    timeout = str(config.sqlite_busy_timeout_seconds)
    return parsed.update_query_dict({"timeout": timeout}).render_as_string(hide_password=False)
