"""The labelled training set: labels from the warehouse, features only through Feast.

The label of a flight is ``delayed_15`` of ``fct_flights`` (departure delay of 15 minutes or more) as 0/1.
Cancelled flights are **excluded** from the training set: a cancellation is a different outcome than a
delay and its departure delay is undefined (``delayed_15`` is NULL), so it is neither a positive nor a
negative example. Their number is reported (``LabelledFlights.cancelled_excluded``) and logged with the run.

Features come from ``hybridops.features.store.historical_features``: a point-in-time join at the flight's
scheduled departure (``event_timestamp = sched_dep_utc``, naive UTC), so the model is trained on exactly the
values the online store would have served before departure. The warehouse's own copies of weather and plane
columns in ``fct_flights`` are never read here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from feast import FeatureStore

from hybridops.errors import HybridopsError
from hybridops.features.entities import FLIGHT_ENTITY_COLUMNS, flight_entities
from hybridops.features.pit_cache import cached_historical_features
from hybridops.features.store import feature_names, load_definitions_module
from hybridops.settings import TrainingSettings

ENTITY_FRAME_COLUMNS = [*FLIGHT_ENTITY_COLUMNS, "label"]


@dataclass(frozen=True)
class LabelledFlights:
    """Departed flights of the requested months with their 0/1 label (sorted by ``flight_id``)."""

    entities: pd.DataFrame
    cancelled_excluded: int
    unlabelled_excluded: int = 0  # departed but without a delay (never happens in the conformed table)


@dataclass(frozen=True)
class TrainingSet:
    """Entities, label and point-in-time Feast features of one training run."""

    frame: pd.DataFrame
    features: list[str]
    feature_views: dict[str, int]  # view name -> Feast registry version number (0 = first definition)
    rows: int
    null_rates: dict[str, float]
    sha256: str
    feature_view_digests: dict[str, str] = field(default_factory=dict)  # view -> hash of its definition


def labelled_flights(con: duckdb.DuckDBPyConnection, months: list[str]) -> LabelledFlights:
    """Flights of ``months`` from ``fct_flights`` with ``label = delayed_15`` as int 0/1.

    Cancelled flights are excluded (their delay is undefined; a cancellation is another outcome than a
    delay) and counted in ``cancelled_excluded``. A departed flight without ``delayed_15`` (not produced by
    the warehouse, but guarded) is excluded too and counted in ``unlabelled_excluded``.
    """
    # flight_id order: the training set's content hash and row order do not depend on departure order.
    raw = flight_entities(con, months).sort_values("flight_id", kind="stable")
    cancelled = raw["cancelled"].fillna(False).astype(bool)
    unlabelled = ~cancelled & raw["delayed_15"].isna()
    kept = raw[~cancelled & ~unlabelled].copy()
    kept["label"] = kept["delayed_15"].astype(bool).astype("int64")
    kept["event_timestamp"] = pd.to_datetime(kept["event_timestamp"]).astype("datetime64[us]")
    entities = kept[ENTITY_FRAME_COLUMNS].reset_index(drop=True)
    return LabelledFlights(
        entities=entities,
        cancelled_excluded=int(cancelled.sum()),
        unlabelled_excluded=int(unlabelled.sum()),
    )


def feature_view_versions(store: FeatureStore) -> tuple[dict[str, int], dict[str, str]]:
    """Registry version number and a definition digest of every view the features come from.

    Feast 0.67 keeps a version history per feature view: ``current_version_number`` is ``None`` until a
    definition changes (the first definition, version 0) and increments on each schema change. The digest
    hashes what defines the values (entities, ttl, feature names and types), not where the source files
    live, so it is stable across state directories.
    """
    module = load_definitions_module()
    versions: dict[str, int] = {}
    digests: dict[str, str] = {}
    for name in module.VIEW_FEATURES:
        view = store.get_feature_view(name)
        number = getattr(view, "current_version_number", None)
        versions[name] = int(number) if number is not None else 0
        definition: dict[str, Any] = {
            "name": view.name,
            "entities": sorted(view.entities),
            "ttl_seconds": view.ttl.total_seconds() if view.ttl is not None else None,
            "features": [[f.name, str(f.dtype)] for f in view.features],
            "timestamp_field": getattr(view.batch_source, "timestamp_field", None),
        }
        encoded = json.dumps(definition, sort_keys=True).encode()
        digests[name] = hashlib.sha256(encoded).hexdigest()[:16]
    return versions, digests


def frame_sha256(frame: pd.DataFrame) -> str:
    """Content hash of a frame independent of its row order (rows sorted by ``flight_id``)."""
    ordered = frame
    if not frame["flight_id"].is_monotonic_increasing:  # a training set is already in flight_id order
        ordered = frame.sort_values("flight_id", kind="mergesort")
    ordered = ordered.reset_index(drop=True)
    ordered = ordered[sorted(ordered.columns)]
    digest = hashlib.sha256()
    digest.update(json.dumps([[c, str(ordered[c].dtype)] for c in ordered.columns]).encode())
    digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def build_training_set(
    store: FeatureStore,
    entities: pd.DataFrame,
    settings: TrainingSettings | None = None,
    cache_dir: Path | None = None,
) -> TrainingSet:
    """Join point-in-time Feast features onto ``entities`` (one row per flight, sorted by ``flight_id``).

    With ``cache_dir`` (and a ``month_key`` column), months already retrieved on the same feature data
    are read from ``hybridops.features.pit_cache`` instead of being joined again.

    Raises:
        HybridopsError: fewer rows than ``settings.min_rows``, a row count different from the entity
            count, or a feature null in more rows than ``settings.max_feature_null_rate`` (features listed
            in ``settings.sparse_features``, null by nature like ``wind_gust``, are exempt; their null
            rates are still reported).
    """
    settings = settings or TrainingSettings()
    if len(entities) < settings.min_rows:
        raise HybridopsError(
            f"training set has {len(entities)} labelled flights, fewer than training.min_rows="
            f"{settings.min_rows}; load more months or lower the setting"
        )
    names = feature_names()
    frame = cached_historical_features(store, entities, cache_dir)
    if len(frame) != len(entities):
        raise HybridopsError(
            f"Feast returned {len(frame)} rows for {len(entities)} entity rows; refusing a training set "
            "that lost or duplicated flights"
        )
    if not frame["flight_id"].is_monotonic_increasing:
        frame = frame.sort_values("flight_id", kind="mergesort")
    frame = frame.reset_index(drop=True)
    for name in names:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    null_rates = {name: float(frame[name].isna().mean()) for name in names}
    exempt = set(settings.sparse_features)
    too_sparse = {
        n: r for n, r in null_rates.items() if r > settings.max_feature_null_rate and n not in exempt
    }
    if too_sparse:
        detail = ", ".join(f"{n} ({r:.1%})" for n, r in sorted(too_sparse.items()))
        raise HybridopsError(
            f"features null in more than training.max_feature_null_rate="
            f"{settings.max_feature_null_rate:.0%} of rows: {detail}; check that the feature tables of "
            "these months were built and applied"
        )
    versions, digests = feature_view_versions(store)
    return TrainingSet(
        frame=frame,
        features=names,
        feature_views=versions,
        rows=len(frame),
        null_rates=null_rates,
        sha256=frame_sha256(frame),
        feature_view_digests=digests,
    )
