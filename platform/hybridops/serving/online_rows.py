"""What one online-store read of a batch fills: per feature view, the rows of the batch's distinct entities.

The store-specific readers (:mod:`hybridops.serving.online_sqlite`, :mod:`hybridops.serving.online_redis`)
fetch every view of a request in one round trip and decode Feast's ``ValueProto`` bytes into these arrays;
:class:`hybridops.serving.features.OnlineFeatureReader` spreads them over the flights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type

_NUMERIC = frozenset({"double_val", "float_val", "int64_val", "int32_val", "bool_val"})


@dataclass(frozen=True)
class ViewSpec:
    """One feature view of the feature service, resolved once at start."""

    name: str
    entity: str  # the view's single join key
    view: Any  # feast.FeatureView (Feast's own definition: table names, hash keys)
    features: tuple[str, ...]  # the served features, in the feature service's order
    columns: np.ndarray  # positions of ``features`` in feature_names()
    position: dict[str, int]  # feature name -> its index in ``features``


class ViewRows:
    """Rows of one view for ``n`` distinct entity keys, plus a last row that stays missing (the default for
    flights whose key is None): ``values`` (n+1 rows of features, NaN = no value), ``stamps`` (Unix seconds
    of the row's event time, NaN when missing), ``found`` (the row has at least one feature value).
    Plain lists: a list item store costs a fraction of a numpy scalar store."""

    __slots__ = ("found", "stamps", "values")

    def __init__(self, n: int, width: int) -> None:
        self.values = [[math.nan] * width for _ in range(n + 1)]
        self.stamps = [math.nan] * (n + 1)
        self.found = [False] * (n + 1)


class OnlineRead(Protocol):
    """Reads the rows of several views in one round trip to the store."""

    def fill(self, keys: Sequence[Sequence[bytes]], out: Sequence[ViewRows]) -> None:
        """``keys[v]``: serialized entity keys of view ``v``; fills ``out[v]`` row by row in that order."""

    def sample_keys(self, limit: int) -> list[list[str]]:
        """Up to ``limit`` entity values per view that the store holds (the start-up self-check's probes)."""

    def close(self) -> None: ...


def entity_value(serialized: bytes, version: int) -> tuple[str, str] | None:
    """(join key, string value) of a serialized single-key entity key; None for any other kind of key."""
    from feast.infra.key_encoding_utils import deserialize_entity_key

    key = deserialize_entity_key(serialized, entity_key_serialization_version=version)
    if len(key.join_keys) != 1 or key.entity_values[0].WhichOneof("val") != "string_val":
        return None
    return key.join_keys[0], key.entity_values[0].string_val


def decode_value(blob: bytes | None) -> float | None:
    """A serialized Feast ``ValueProto`` as a float; None when absent or unset (a null feature value)."""
    if not blob:
        return None
    value = Value.FromString(blob)
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in _NUMERIC:  # scalar protos: read the field directly (what Feast's converter does for them)
        return float(getattr(value, kind))
    python = feast_value_type_to_python_type(value)
    return math.nan if python is None else float(python)
