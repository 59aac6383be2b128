"""Feast's serialized entity keys of single string join keys, without building an ``EntityKey`` proto per key.

``feast.infra.key_encoding_utils.serialize_entity_key`` costs about 10 µs per key with its proto; a
100-flight request has about 200 distinct keys over the five views. For one string join key its bytes are
a fixed head (the join key's part and the value's type) followed by the value's length and UTF-8 bytes;
the head is taken from Feast's own ``serialize_entity_key``, and every encoder checks itself against it at
construction, so a Feast release that changes the layout fails the service's start instead of missing
every row.
"""

from __future__ import annotations

import struct

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from hybridops.errors import HybridopsError

_LENGTH = struct.Struct("<I")
_PROBES = ("", "EWR", "EWR-IAH", "N14228", "JFK-07", "Zürich ✈")


def feast_entity_key(join_key: str, value: str, version: int) -> bytes:
    """The reference: Feast's own serialization of one string join key."""
    proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
    return serialize_entity_key(proto, entity_key_serialization_version=version)


class EntityKeyEncoder:
    """``encode(value)`` == ``serialize_entity_key(EntityKey([join_key], [string value]), version)``."""

    def __init__(self, join_key: str, version: int) -> None:
        self.join_key = join_key
        self.version = version
        if version < 3:
            raise HybridopsError(f"entity_key_serialization_version {version} is not supported (3 or later)")
        probe = "x"
        full = feast_entity_key(join_key, probe, version)
        tail = _LENGTH.pack(len(probe)) + probe.encode()
        if not full.endswith(tail):
            raise HybridopsError(f"unexpected Feast entity key layout for {join_key!r}: {full!r}")
        self._head = full[: -len(tail)]
        for value in _PROBES:
            if self.encode(value) != feast_entity_key(join_key, value, version):
                raise HybridopsError(
                    f"Feast's entity key serialization (version {version}) changed for {join_key}={value!r}; "
                    "hybridops.serving.entity_keys must follow it"
                )

    def encode(self, value: str) -> bytes:
        data = value.encode()
        return self._head + _LENGTH.pack(len(data)) + data
