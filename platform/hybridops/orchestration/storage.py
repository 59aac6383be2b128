"""Dagster's SQLite run, event-log and schedule storages, tuned for one local instance and safe to create
from several processes at once. The only module of hybridops that touches Dagster's private storage classes
(listed in ``docs/internals.md``).

Dagster's SQLite storages open a fresh SQLAlchemy engine for every statement and commit each event with a
full ``fsync``. A monthly run stores a few hundred events (every asset check is planned, then evaluated),
so on a laptop the event log, not the pipeline, became the slowest stage. These subclasses keep one
pooled engine per database file and run SQLite in WAL mode with ``synchronous=NORMAL``: a committed event
is durable once the WAL is checkpointed, and a power cut can lose the last few events but never corrupt
the database (the trade-off SQLite documents for WAL). Schema, file layout and queries are Dagster's own,
so the webserver, the daemon and ``dagster`` CLI read the same files. Cluster deployments use Postgres.

Several ``hybridops run`` processes may open one fresh instance at once (what several run pods do). Dagster
creates each database in place (tables, then an alembic stamp), and two processes doing that at once left
"table already exists" errors or two alembic heads in one file. Here every database file (``runs.db``,
``schedules.db``, the event log's ``index.db`` and each run's shard) is built complete in a private folder
next to its place, by Dagster's own code, and hard-linked into place: a process sees no file or a
finished one, and a link that finds the file already there keeps the other process's copy.

The subclasses rely on private details of the exact Dagster release in :data:`PINNED_DAGSTER`. Opening a
storage checks that version, and the first run and the first event that a process stores are read back
through Dagster's public storage API and compared; a mismatch raises :class:`StorageAdapterError`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any, cast

import dagster
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from hybridops.errors import HybridopsError

# The Dagster release whose private SQLite storages these classes extend (pyproject pins it exactly).
PINNED_DAGSTER = "1.13.27"
# Same busy timeout as Dagster's: the webserver, the daemon and several runs may write at once.
_BUSY_TIMEOUT_SECONDS = 30
# Run shards stay open for the runs being written or read; older ones are closed.
_MAX_OPEN_SHARDS = 16


class StorageAdapterError(HybridopsError):
    """hybridops' tuned Dagster storages do not behave like Dagster's own on this installation."""


def check_dagster_version(installed: str | None = None) -> None:
    """Refuse a Dagster release other than the one the subclasses were written and measured against."""
    installed = installed or dagster.__version__
    if installed != PINNED_DAGSTER:
        raise StorageAdapterError(
            f"hybridops.orchestration.storage extends the private SQLite storages of Dagster {PINNED_DAGSTER}, "
            f"but Dagster {installed} is installed. Install dagster=={PINNED_DAGSTER} (the version hybridops "
            "pins), or use Dagster's own storages: delete the first line of dagster.yaml in the instance "
            "folder and remove its run_storage, event_log_storage and schedule_storage blocks."
        )


def _engine(conn_string: str) -> Engine:
    engine = create_engine(
        conn_string,
        connect_args={"timeout": _BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        pool_size=1,
        max_overflow=4,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _publish(staged: Path, target: Path) -> None:
    """Hard-link the finished database ``staged`` to ``target`` unless a file is already there."""
    # Everything in one file: a WAL left beside the staged file would not travel with the link.
    with closing(sqlite3.connect(staged, timeout=_BUSY_TIMEOUT_SECONDS)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # FileExistsError: another process published the same database first; theirs is kept.
    with suppress(FileExistsError):
        os.link(staged, target)


def create_atomically(target: Path, build: Callable[[Path], None]) -> None:
    """Create the SQLite database ``target`` with ``build(folder)`` (which must write ``folder/<name>`` and
    close it) in a private folder beside it, then publish it whole. Nothing happens if it exists."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.stem}-", dir=target.parent))
    try:
        build(folder)
        _publish(folder / target.name, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _build_run_storage(folder: Path) -> None:
    storage = SqliteRunStorage.from_local(str(folder))
    storage.get_run_storage_id()  # written once here, so processes never race to insert it
    storage.dispose()


def _build_schedule_storage(folder: Path) -> None:
    SqliteScheduleStorage.from_local(str(folder)).dispose()


def _build_event_log_index(folder: Path) -> None:
    SqliteEventLogStorage(str(folder)).dispose()


class LocalEventLogStorage(SqliteEventLogStorage):
    """Per-run SQLite event log shards (Dagster's layout) with pooled connections."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        check_dagster_version()
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._template: Path | None = None
        self._verified = False
        # Dagster's constructor creates index.db in place when it is missing; created here first, whole.
        create_atomically(Path(base_dir).resolve() / "index.db", _build_event_log_index)
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> LocalEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _shard_engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = _engine(self.conn_string_for_shard(shard))
            self._engines[shard] = engine
            while len(self._engines) > _MAX_OPEN_SHARDS:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            return engine

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """New run shards start as a copy of one initialized empty shard.

        Dagster creates every run's database with its alembic migrations, a quarter of a second per run;
        the schema and revision stamp are the same each time, so one migrated file is copied instead.
        """
        target = Path(str(engine.url.database))
        if for_index_shard or target.exists():
            super()._initdb(engine, for_index_shard)
            return
        # The template is a closed, checkpointed database (no WAL beside it): a copy is the whole file.
        template = self._shard_template()
        staged = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        shutil.copyfile(template, staged)
        try:
            os.link(staged, target)  # never replaces a shard that another process created meanwhile
        except FileExistsError:
            super()._initdb(engine, for_index_shard)
        finally:
            staged.unlink(missing_ok=True)

    def _shard_template(self) -> Path:
        if self._template is None:
            folder = Path(tempfile.mkdtemp(prefix="hybridops-shard-"))
            template = folder / "template.db"
            engine = create_engine(f"sqlite:///{template}", poolclass=NullPool)
            super()._initdb(engine)
            engine.dispose()
            self._template = template
        return self._template

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._shard_engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def store_event(self, event: Any) -> None:
        super().store_event(event)
        if not self._verified and event.run_id:
            self._verified = True
            self._read_back(event)

    def _read_back(self, event: Any) -> None:
        """The first event this process stores, read back through the public API: the same event.

        Another process may write events of the same run meanwhile (the run worker, when this process
        terminates its run): the event is looked for among the run's newest ones of its type.
        """
        of_type = event.dagster_event.event_type if event.dagster_event else None
        records = self.get_records_for_run(event.run_id, of_type=of_type, ascending=False, limit=20).records
        entries = [record.event_log_entry for record in records]
        stored = event if event in entries else entries[0] if entries else None
        if stored != event:
            raise StorageAdapterError(
                "hybridops.orchestration.storage.LocalEventLogStorage stored an event of run "
                f"{event.run_id} that Dagster's get_records_for_run reads back as {stored!r} instead of "
                f"{event!r}; Dagster {dagster.__version__}, pinned {PINNED_DAGSTER}."
            )

    def dispose(self) -> None:
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        if self._template is not None:
            shutil.rmtree(self._template.parent, ignore_errors=True)
            self._template = None
        super().dispose()


class LocalRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage (``runs.db``) with one pooled engine."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        check_dagster_version()
        self._engine = _engine(conn_string)
        self._verified = False
        super().__init__(conn_string, inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> LocalRunStorage:
        base_dir = Path(config_value["base_dir"]).resolve()
        create_atomically(base_dir / "runs.db", _build_run_storage)
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def add_run(self, dagster_run: Any) -> Any:
        added = super().add_run(dagster_run)
        if not self._verified:
            self._verified = True
            found = self.get_runs(dagster.RunsFilter(run_ids=[dagster_run.run_id]))
            stored = found[0] if found else None
            if stored != dagster_run:
                raise StorageAdapterError(
                    f"hybridops.orchestration.storage.LocalRunStorage stored run {dagster_run.run_id} that "
                    f"Dagster's get_runs reads back as {stored!r}; Dagster {dagster.__version__}, "
                    f"pinned {PINNED_DAGSTER}."
                )
        return added

    def dispose(self) -> None:
        self._engine.dispose()
        super().dispose()


class LocalScheduleStorage(SqliteScheduleStorage):
    """Dagster's SQLite schedule storage (``schedules.db``), created whole when several processes start."""

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> LocalScheduleStorage:
        check_dagster_version()
        base_dir = Path(config_value["base_dir"]).resolve()
        create_atomically(base_dir / "schedules.db", _build_schedule_storage)
        # Dagster's from_local builds ``cls`` (annotated as its own class)
        return cast(LocalScheduleStorage, cls.from_local(inst_data=inst_data, **config_value))
