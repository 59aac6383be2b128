"""Dagster's SQLite run and event-log storage, tuned for one local instance.

Dagster's SQLite storages open a fresh SQLAlchemy engine for every statement and commit each event with a
full ``fsync``. A monthly run stores a few hundred events (every asset check is planned, then evaluated),
so on a laptop the event log, not the pipeline, became the slowest stage. These subclasses keep one
pooled engine per database file and run SQLite in WAL mode with ``synchronous=NORMAL``: a committed event
is durable once the WAL is checkpointed, and a power cut can lose the last few events but never corrupt
the database (the trade-off SQLite documents for WAL). Schema, file layout and queries are Dagster's own,
so the webserver, the daemon and ``dagster`` CLI read the same files. Cluster deployments use Postgres.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sql import create_engine
from dagster._serdes import ConfigurableClassData
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

# Same busy timeout as Dagster's: the webserver and a run may write at once.
_BUSY_TIMEOUT_SECONDS = 30
# Run shards stay open for the runs being written or read; older ones are closed.
_MAX_OPEN_SHARDS = 16


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


class LocalEventLogStorage(SqliteEventLogStorage):
    """Per-run SQLite event log shards (Dagster's layout) with pooled connections."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._template: Path | None = None
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
        template = self._shard_template()
        staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(template, staged)
        try:
            # A hard link never replaces a shard another process created meanwhile.
            os.link(staged, target)
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
        self._engine = _engine(conn_string)
        super().__init__(conn_string, inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> LocalRunStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._engine.dispose()
        super().dispose()
