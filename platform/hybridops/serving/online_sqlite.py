"""Every feature view of a request in one query on Feast's SQLite online store.

Feast's ``SqliteOnlineStore.online_read`` runs one query per view and turns every (entity, feature) row into
a ``datetime`` through the connection's ``PARSE_DECLTYPES`` converter: about 1.1 ms for the five views of
one flight. This reader keeps Feast's layout (its database path, its table names ``_table_id``, one row
per entity key and feature with a serialized ``ValueProto``, ``event_ts`` decoded by Feast's
``convert_timestamp``) and reads all views with one ``UNION ALL`` on a read-only connection of its own,
decoding timestamps once per entity rather than once per feature.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

from feast import RepoConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id, convert_timestamp

from hybridops.serving.online_rows import ViewRows, ViewSpec, decode_value, entity_value

_MAX_QUERIES = 512  # distinct statements kept: one per combination of (bucketed) key counts seen
_CACHE_KIB = 64 * 1024  # SQLite page cache ceiling (pages are allocated as they are read)
_MMAP_BYTES = 256 * 2**20


def _bucket(count: int) -> int:
    """``count`` rounded up to three significant bits (9 -> 10, 97 -> 112): the statement's number of
    placeholders per view; the spare ones are bound to NULL, which no ``IN`` matches.

    A statement per exact combination of key counts made nearly every batch of real traffic a new
    statement (99 of the benchmark's 100 bodies of 100 flights have their own counts), and preparing one
    five-way UNION ALL of ~200 placeholders costs 0.3-0.45 ms of CPU, a third of its execution. Padded,
    21 shapes cover those 100 bodies and stay in sqlite3's statement cache, for at most 25% more
    placeholders (about 0.04 ms more per execution of 100 flights)."""
    if count <= 8:
        return count
    shift = count.bit_length() - 3
    return (((count - 1) >> shift) + 1) << shift


def _unix(raw: object) -> float:
    """Feast's decoding of ``event_ts`` (``convert_timestamp``, then read as UTC) as Unix seconds."""
    return convert_timestamp(raw).replace(tzinfo=UTC).timestamp()  # type: ignore[arg-type]


class SqliteOnlineRead:
    def __init__(self, config: RepoConfig, views: Sequence[ViewSpec], timeout: float) -> None:
        path = Path(SqliteOnlineStore._get_db_path(config))
        # read-only: the service never writes, and a missing file is an outage, not a new empty store
        self._conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=timeout,
            check_same_thread=False,
            cached_statements=_MAX_QUERIES,
        )
        # The default page cache (2 MiB) is smaller than a two-month store, so a 100-flight read re-read
        # evicted pages with a system call each; a bigger cache and memory-mapped reads keep them in memory.
        self._conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        self._conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        versioning = config.registry.enable_online_feature_view_versioning
        self._tables = [_quote_id(_table_id(config.project, spec.view, versioning)) for spec in views]
        self._selects = [
            f"SELECT {v}, entity_key, feature_name, value, event_ts FROM {table} WHERE entity_key IN ("
            for v, table in enumerate(self._tables)
        ]
        self._version = config.entity_key_serialization_version
        self._positions = [spec.position for spec in views]
        self._queries: dict[tuple[int, ...], str] = {}

    def _query(self, counts: tuple[int, ...]) -> str:
        """The statement for these numbers of placeholders per view (the same text hits sqlite3's
        statement cache)."""
        sql = self._queries.get(counts)
        if sql is None:
            if len(self._queries) >= _MAX_QUERIES:
                self._queries.clear()
            parts = [
                self._selects[v] + ",".join("?" * count) + ")" for v, count in enumerate(counts) if count
            ]
            sql = self._queries[counts] = " UNION ALL ".join(parts)
        return sql

    def fill(self, keys: Sequence[Sequence[bytes]], out: Sequence[ViewRows]) -> None:
        counts = tuple(_bucket(len(view_keys)) for view_keys in keys)
        if not any(counts):
            return
        params: list[bytes | None] = []
        for view_keys, count in zip(keys, counts, strict=True):
            params += view_keys
            params += [None] * (count - len(view_keys))
        rows = self._conn.execute(self._query(counts), params).fetchall()
        index = [{key: j for j, key in enumerate(view_keys)} for view_keys in keys]
        positions = self._positions
        # per request: entities of a batch share few event times and many values (about 40% of 100 flights')
        stamps: dict[object, float] = {}
        decoded: dict[bytes, float | None] = {}
        for v, key, name, blob, raw_ts in rows:
            column = positions[v].get(name)
            if column is None:  # a feature of the view that the feature service does not serve
                continue
            if blob in decoded:
                value = decoded[blob]
            else:
                value = decoded[blob] = decode_value(blob)
            if value is None:
                continue
            j = index[v][key]
            rows_v = out[v]
            rows_v.values[j][column] = value
            if not rows_v.found[j]:
                rows_v.found[j] = True
                stamp = stamps.get(raw_ts)
                if stamp is None:
                    stamp = stamps[raw_ts] = _unix(raw_ts)
                rows_v.stamps[j] = stamp

    def sample_keys(self, limit: int) -> list[list[str]]:
        """The entities of each view's newest rows."""
        sampled: list[list[str]] = []
        for table in self._tables:
            try:
                rows = self._conn.execute(
                    f"SELECT entity_key FROM {table} GROUP BY entity_key "
                    "ORDER BY max(event_ts) DESC, entity_key LIMIT ?",
                    [limit],
                ).fetchall()
            except sqlite3.OperationalError:  # the view was never materialized: no table yet
                rows = []
            decoded = (entity_value(row[0], self._version) for row in rows)
            sampled.append([found[1] for found in decoded if found is not None])
        return sampled

    def close(self) -> None:
        self._conn.close()
