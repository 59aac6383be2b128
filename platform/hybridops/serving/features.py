"""Online features of a batch of flights, read through Feast's own online store and definitions.

The reader pre-resolves the feature service ``flight_delay_v1`` once and reads each of its views with the
configured Feast ``OnlineStore`` object (``online_read``: Feast's entity-key serialization and value
protos), one call per view for the batch's *distinct* entity keys. Measured on the SQLite store (2 cores):
``FeatureStore.get_online_features`` took about 18 ms for 1 flight and 28 ms for 100 (it re-reads the file
registry and builds a response per call); ``online_read`` of the four views takes 0.26 ms and 0.56 ms.

Values are converted with Feast's ``feast_value_type_to_python_type``; an entity without a row gives NaN
for all of its view's features (LightGBM treats NaN as missing) and marks the flight degraded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from feast import FeatureStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type

from hybridops.errors import HybridopsError
from hybridops.features.compute import origin_hour_key
from hybridops.features.store import feature_names, feature_store, load_definitions_module
from hybridops.settings import Settings

LOCAL_TZ = ZoneInfo("America/New_York")


class StoreUnavailableError(HybridopsError):
    """The online store could not be read."""


@dataclass(frozen=True)
class _View:
    name: str
    entity: str
    view: Any  # feast.FeatureView
    features: list[str]
    columns: np.ndarray  # positions of ``features`` in feature_names()


@dataclass
class FeatureBatch:
    """Features of ``n`` flights: ``matrix`` (n x features, ``feature_names()`` order, NaN = missing),
    ``event_ts`` (n x views, Unix seconds of each online value, NaN when missing), ``missing``
    (n x views, True when the view had no row for the flight's entity)."""

    matrix: np.ndarray
    event_ts: np.ndarray
    missing: np.ndarray


def local_to_unix(value: datetime) -> float:
    """A New York local (naive) or offset-aware datetime as Unix seconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=LOCAL_TZ)
    return value.timestamp()


_NUMERIC = frozenset({"double_val", "float_val", "int64_val", "int32_val", "bool_val"})


def entity_row(
    carrier: str, origin: str, dest: str, tailnum: str | None, sched_dep: datetime
) -> dict[str, str | None]:
    """The Feast entity keys of one flight (``ENTITY_COLUMNS``), with the platform's own key builders."""
    local = sched_dep if sched_dep.tzinfo is None else sched_dep.astimezone(LOCAL_TZ).replace(tzinfo=None)
    return {
        "origin": origin,
        "carrier": carrier,
        "route": f"{origin}-{dest}",
        "tailnum": tailnum,
        "origin_hour": origin_hour_key(origin, local),
    }


def _as_float(value: Value | None) -> float:
    if value is None:
        return math.nan
    kind = value.WhichOneof("val")
    if kind in _NUMERIC:  # scalar protos: read the field directly (what Feast's converter does for them)
        return float(getattr(value, kind))
    python = feast_value_type_to_python_type(value)
    return math.nan if python is None else float(python)


class OnlineFeatureReader:
    """Feature matrices for entity rows (keys ``origin, carrier, route, tailnum``)."""

    def __init__(self, settings: Settings, store: FeatureStore | None = None) -> None:
        self.store = store or feature_store(settings)
        module = load_definitions_module()
        self.names = feature_names()
        position = {name: i for i, name in enumerate(self.names)}
        service = self.store.get_feature_service(module.FEATURE_SERVICE)
        self.views: list[_View] = []
        for projection in service.feature_view_projections:
            features = [feature.name for feature in projection.features]
            self.views.append(
                _View(
                    name=projection.name,
                    entity=module.VIEW_ENTITY[projection.name],
                    view=self.store.get_feature_view(projection.name),
                    features=features,
                    columns=np.array([position[name] for name in features], dtype=np.intp),
                )
            )
        self.view_names = [view.name for view in self.views]
        self.config = self.store.config
        self.online_store = self.store._get_provider().online_store

    def _read(self, view: _View, keys: list[str]) -> list[tuple[Any, Any]]:
        entity_keys = [EntityKey(join_keys=[view.entity], entity_values=[Value(string_val=k)]) for k in keys]
        try:
            # a copy: Feast's Redis store appends its timestamp key to the list it is given
            return list(
                self.online_store.online_read(self.config, view.view, entity_keys, list(view.features))
            )
        except Exception as exc:  # any backend failure (sqlite3, redis, OSError) is an outage
            raise StoreUnavailableError(f"online store read of {view.name} failed: {exc}") from exc

    def ping(self) -> None:
        """One real read (of a key that does not exist): raises StoreUnavailableError when unreachable."""
        self._read(self.views[0], ["__hybridops_readyz__"])

    def read(self, rows: Sequence[dict[str, str | None]]) -> FeatureBatch:
        n = len(rows)
        matrix = np.full((n, len(self.names)), np.nan)
        event_ts = np.full((n, len(self.views)), np.nan)
        missing = np.zeros((n, len(self.views)), dtype=bool)
        for v, view in enumerate(self.views):
            row_keys = [row.get(view.entity) for row in rows]
            unique = list(dict.fromkeys(key for key in row_keys if key is not None))
            table = np.full((len(unique) + 1, len(view.features)), np.nan)  # last row: the missing default
            stamps = np.full(len(unique) + 1, np.nan)
            found = np.zeros(len(unique) + 1, dtype=bool)
            if unique:
                for j, (ts, values) in enumerate(self._read(view, unique)):
                    # a missing key: None (SQLite) or a row of unset values (Redis)
                    if values is None or all(v.WhichOneof("val") is None for v in values.values()):
                        continue
                    found[j] = True
                    stamps[j] = ts.timestamp() if ts is not None else np.nan
                    table[j] = [_as_float(values.get(name)) for name in view.features]
            index = {key: j for j, key in enumerate(unique)}
            idx = np.fromiter((index.get(key, -1) if key is not None else -1 for key in row_keys), np.intp, n)
            matrix[:, view.columns] = table[idx]
            event_ts[:, v] = stamps[idx]
            missing[:, v] = ~found[idx]
        return FeatureBatch(matrix=matrix, event_ts=event_ts, missing=missing)


def default_batch(n: int, n_features: int, n_views: int) -> FeatureBatch:
    """All features missing (the online store is unreachable and serving.on_store_error = degrade)."""
    return FeatureBatch(
        matrix=np.full((n, n_features), np.nan),
        event_ts=np.full((n, n_views), np.nan),
        missing=np.ones((n, n_views), dtype=bool),
    )
