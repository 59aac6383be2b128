"""Every feature view of a request in one pipeline on Feast's Redis online store, with bounded timeouts.

Feast's layout: one hash per entity key (``serialize_entity_key`` + project), one field per feature
(``_mmh3("<view>:<feature>")``) holding a serialized ``ValueProto`` and one ``_ts:<view>`` field holding
the event time as a protobuf ``Timestamp``. Field names come from Feast's own
``_generate_hset_keys_for_features`` and every key is checked against ``_generate_redis_keys_for_entities``
at start. One ``HMGET`` per (view, distinct entity), all written at once on one pooled connection and
their replies read back: one round trip per request instead of one per view (redis-py's pipeline object
does the same with about 8 µs more Python per command).

Feast's client has no socket timeout and redis-py retries with exponential backoff (seconds), so a
stopped or hung Redis held a request for seconds or forever. Here connect and read waits are capped
(``serving.store_timeout_seconds``) and a failed round trip is retried at once ``serving.redis_retries``
times on a fresh connection: a read fails within (redis_retries + 1) x 2 x store_timeout_seconds.
Parameters written in the connection string win over the timeouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from feast import RepoConfig
from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from hybridops.errors import HybridopsError
from hybridops.serving.entity_keys import EntityKeyEncoder
from hybridops.serving.online_rows import ViewRows, ViewSpec, decode_value, entity_value


def redis_client(config: RepoConfig, timeout: float) -> Redis:
    """A redis-py client for Feast's ``connection_string`` (``host:port[,param=value...]``)."""
    nodes, params = RedisOnlineStore._parse_connection_string(config.online_store.connection_string)
    params.setdefault("socket_timeout", timeout)
    params.setdefault("socket_connect_timeout", timeout)
    # retries belong to RedisOnlineRead (whole round trips); redis-py's own would nest in connect and read
    params["retry"] = Retry(NoBackoff(), 0)
    return Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params)


class RedisOnlineRead:
    def __init__(
        self,
        config: RepoConfig,
        views: Sequence[ViewSpec],
        timeout: float,
        retries: int,
    ) -> None:
        # Feast's own store object, used only for its key and field naming (it opens no connection here).
        feast_store = RedisOnlineStore()
        self._client = redis_client(config, timeout)
        self._retries = retries
        self._project = config.project.encode()
        self._fields: list[list[str | bytes]] = []
        self._entities = [spec.entity for spec in views]
        self._version = config.entity_key_serialization_version
        for spec in views:
            _, fields = feast_store._generate_hset_keys_for_features(
                spec.view, list(spec.features), fv_name_override=_versioned_fv_name(spec.view, config)
            )
            if fields[-1] != f"_ts:{_versioned_fv_name(spec.view, config)}":
                raise HybridopsError(f"unexpected Feast Redis field layout for {spec.name}: {fields[-1]!r}")
            self._fields.append(fields)
            encoder = EntityKeyEncoder(spec.entity, config.entity_key_serialization_version)
            probe = EntityKey(join_keys=[spec.entity], entity_values=[Value(string_val="EWR")])
            (expected,) = feast_store._generate_redis_keys_for_entities(config, [probe])
            if encoder.encode("EWR") + self._project != expected:
                raise HybridopsError(f"Feast's Redis key layout changed for {spec.name}")

    def _round_trip(self, commands: list[tuple[str | bytes, ...]]) -> list[Any]:
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            return [connection.read_response() for _ in commands]
        except BaseException:
            connection.disconnect()  # replies left unread would answer the next request's commands
            raise
        finally:
            pool.release(connection)

    def fill(self, keys: Sequence[Sequence[bytes]], out: Sequence[ViewRows]) -> None:
        project = self._project
        commands = [
            ("HMGET", key + project, *self._fields[v])
            for v, view_keys in enumerate(keys)
            for key in view_keys
        ]
        if not commands:
            return
        for attempt in range(self._retries + 1):
            try:
                replies = self._round_trip(commands)
                break
            except (RedisConnectionError, RedisTimeoutError):
                if attempt == self._retries:
                    raise
        decoded: dict[bytes | None, float | None] = {}  # per request: 100 flights share about 40% of values
        at = 0
        for v, view_keys in enumerate(keys):
            rows_v = out[v]
            for j in range(len(view_keys)):
                reply = replies[at + j]
                values = rows_v.values[j]
                found = False
                for column, blob in enumerate(reply[:-1]):
                    if blob in decoded:
                        value = decoded[blob]
                    else:  # None: no hash, or Feast's empty ValueProto of a null
                        value = decoded[blob] = decode_value(blob)
                    if value is not None:
                        values[column] = value
                        found = True
                if found:
                    rows_v.found[j] = True
                    stamp = Timestamp()
                    if reply[-1]:
                        stamp.ParseFromString(reply[-1])
                    # Feast's decoding: seconds + nanos as an aware UTC datetime
                    seconds = stamp.seconds + stamp.nanos / 1_000_000_000.0
                    rows_v.stamps[j] = datetime.fromtimestamp(seconds, tz=UTC).timestamp()
            at += len(view_keys)

    def sample_keys(self, limit: int, scanned: int = 10_000) -> list[list[str]]:
        """Entities of each view's join key among the first ``scanned`` keys of the project (Redis keeps
        no order by event time)."""
        by_join_key: dict[str, list[str]] = {}
        for count, key in enumerate(self._client.scan_iter(match=b"*" + self._project, count=1000)):
            if count >= scanned:
                break
            found = entity_value(key[: -len(self._project)], self._version)
            if found is not None:
                values = by_join_key.setdefault(found[0], [])
                if len(values) < limit:
                    values.append(found[1])
        return [sorted(by_join_key.get(entity, [])) for entity in self._entities]

    def close(self) -> None:
        self._client.close()
