"""The labelled training set: labels from the warehouse, features only through Feast.

The label of a flight is ``delayed_15`` of ``fct_flights`` (departure delay of 15 minutes or more) as 0/1.
Cancelled flights are **excluded** from the training set: a cancellation is a different outcome than a
delay and its departure delay is undefined (``delayed_15`` is NULL), so it is neither a positive nor a
negative example. Their number is reported (``LabelledFlights.cancelled_excluded``) and logged with the run.

Features come from ``hybridops.features.store.historical_features``: a point-in-time join at the flight's
as-of time (``event_timestamp = sched_dep_utc - model.horizon_minutes``, naive UTC), so the model is trained
on exactly the values known at the prediction horizon. The warehouse's own copies of weather and plane
columns in ``fct_flights`` are never read here. The request-time features (scheduled local hour, minute,
day of week, carrier/origin/destination codes) are computed from the entity frame's request columns by
``hybridops.features.request``, the function batch scoring and serving call too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hybridops.errors import HybridopsError
from hybridops.features.entities import FLIGHT_ENTITY_COLUMNS, arrow_string_types, flight_entity_table
from hybridops.features.keys import DEFAULT_HORIZON_MINUTES
from hybridops.features.pit_cache import cached_historical_features
from hybridops.features.request import REQUEST_VIEW, model_features, with_request_features
from hybridops.features.store import load_definitions_module
from hybridops.settings import TrainingSettings

if TYPE_CHECKING:  # Feast is imported by the functions that use it (~4 s)
    from feast import FeatureStore

ENTITY_FRAME_COLUMNS = [*FLIGHT_ENTITY_COLUMNS, "label"]


@dataclass(frozen=True)
class LabelledFlights:
    """Departed flights of the requested months with their 0/1 label (sorted by ``flight_id``)."""

    entities: pd.DataFrame
    cancelled_excluded: int
    unlabelled_excluded: int = 0  # departed but without a delay (never happens in the conformed table)


@dataclass(frozen=True)
class TrainingSet:
    """Entities, label, point-in-time Feast features and request features of one training run
    (``features``: the model's inputs, ``model_features()``)."""

    frame: pd.DataFrame
    features: list[str]
    feature_views: dict[str, int]  # view name -> Feast registry version number (0 = first definition)
    rows: int
    null_rates: dict[str, float]
    sha256: str
    feature_view_digests: dict[str, str] = field(default_factory=dict)  # view -> hash of its definition


def labelled_flights(
    con: duckdb.DuckDBPyConnection, months: list[str], horizon_minutes: int = DEFAULT_HORIZON_MINUTES
) -> LabelledFlights:
    """Flights of ``months`` from ``fct_flights`` with ``label = delayed_15`` as int 0/1.

    Cancelled flights are excluded (their delay is undefined; a cancellation is another outcome than a
    delay) and counted in ``cancelled_excluded``. A departed flight without ``delayed_15`` (not produced by
    the warehouse, but guarded) is excluded too and counted in ``unlabelled_excluded``. String columns
    are ``string[pyarrow]``. ``event_timestamp`` is the as-of time, departure minus ``horizon_minutes``.
    """
    # flight_id order (sorted by DuckDB): the training set's content hash and row order do not depend on
    # departure order. Filtering in Arrow before the conversion copies each kept value once.
    table = flight_entity_table(con, months, order="flight_id", horizon_minutes=horizon_minutes)
    cancelled = pc.fill_null(table["cancelled"], False)
    departed = pc.invert(cancelled)
    labelled = pc.is_valid(table["delayed_15"])
    kept = table.filter(pc.and_(departed, labelled))
    label = pc.cast(kept["delayed_15"], pa.int64())
    kept = kept.select(FLIGHT_ENTITY_COLUMNS).append_column("label", label)
    entities = kept.to_pandas(types_mapper=arrow_string_types)
    entities["event_timestamp"] = entities["event_timestamp"].astype("datetime64[us]")
    return LabelledFlights(
        entities=entities,
        cancelled_excluded=int(pc.sum(cancelled).as_py() or 0),
        unlabelled_excluded=int(pc.sum(pc.and_(departed, pc.invert(labelled))).as_py() or 0),
    )


def feature_view_versions(store: FeatureStore) -> tuple[dict[str, int], dict[str, str]]:
    """Registry version number and a definition digest of every view the features come from (the stored
    views and the on-demand view ``flight_request``).

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
    # The on-demand view of the request features: what the model reads besides the stored views (the
    # platform computes its values with the same function, hybridops.features.request).
    request = store.get_on_demand_feature_view(REQUEST_VIEW)
    number = getattr(request, "current_version_number", None)
    versions[REQUEST_VIEW] = int(number) if number is not None else 0
    request_definition = {
        "name": request.name,
        "request_fields": sorted(
            [f.name, str(f.dtype)]
            for source in request.source_request_sources.values()
            for f in source.schema
        ),
        "features": [[f.name, str(f.dtype)] for f in request.features],
        "mode": request.mode,
    }
    encoded = json.dumps(request_definition, sort_keys=True).encode()
    digests[REQUEST_VIEW] = hashlib.sha256(encoded).hexdigest()[:16]
    return versions, digests


def _in_flight_id_order(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is sorted by ``flight_id`` (compared in Arrow for ``string[pyarrow]`` ids)."""
    ids = frame["flight_id"]
    if isinstance(ids.dtype, pd.StringDtype) and ids.dtype.storage == "pyarrow" and not ids.hasnans:
        # pandas would convert every id to a Python object first.
        array = pa.array(ids.array)
        return len(array) < 2 or bool(pc.all(pc.less_equal(array[:-1], array[1:])).as_py())
    return bool(ids.is_monotonic_increasing)


def frame_sha256(frame: pd.DataFrame) -> str:
    """Content hash of a frame, independent of its row order and of how its strings are stored.

    Rows are taken in ``flight_id`` order and columns in name order. The hash covers the row count and
    each column's name, kind and values: numbers and timestamps as their bytes (every NaN alike), strings
    as their UTF-8 bytes, lengths and nulls, so an ``object`` column and a ``string`` column of the same
    text hash alike. Columns of any other dtype are hashed with ``pandas.util.hash_pandas_object``.
    """
    ordered = frame
    if not _in_flight_id_order(frame):  # a training set is already in flight_id order
        ordered = frame.sort_values("flight_id", kind="mergesort")
    columns = sorted(ordered.columns)
    encoded = {name: _column_parts(ordered[name]) for name in columns}
    digest = hashlib.sha256()
    header = {"rows": len(ordered), "columns": [[name, encoded[name][0]] for name in columns]}
    digest.update(json.dumps(header).encode())
    for name in columns:
        for part in encoded[name][1]:
            view = memoryview(part)
            # Each part's length first: parts of different lengths never run into one another.
            digest.update(len(view).to_bytes(8, "little"))
            digest.update(view)
    return digest.hexdigest()


def _column_parts(column: pd.Series) -> tuple[str, list[Any]]:
    """A column's kind and the buffers its values are hashed from (see ``frame_sha256``)."""
    dtype = column.dtype
    is_text = isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, pd.ArrowDtype)
        and (pa.types.is_string(dtype.pyarrow_dtype) or pa.types.is_large_string(dtype.pyarrow_dtype))
    )
    if pd.api.types.is_object_dtype(dtype):
        is_text = pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty")
    if is_text:
        return "string", _text_parts(column)
    if isinstance(dtype, np.dtype) and dtype.kind in "biufmM":
        values = np.ascontiguousarray(column.to_numpy())
        if dtype.kind == "f" and np.isnan(values).any():
            values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
        return str(dtype), [values.view(np.uint8)]
    hashed = pd.util.hash_pandas_object(column, index=False).to_numpy()
    return str(dtype), [np.ascontiguousarray(hashed).view(np.uint8)]


def _text_parts(column: pd.Series) -> list[Any]:
    """Validity, lengths (as offsets from 0) and UTF-8 bytes of a column of strings (nulls as empty)."""
    source = column.to_numpy() if pd.api.types.is_object_dtype(column.dtype) else column.array
    array = pa.array(source, type=pa.large_string(), from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
    if array.null_count:
        array = pc.fill_null(array, "")  # a null slot may span bytes; an empty string spans none
    _, offsets_buffer, data = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=len(array) + 1, offset=array.offset * 8)
    start, end = int(offsets[0]), int(offsets[-1])
    text = memoryview(data)[start:end] if data is not None else b""
    return [valid.view(np.uint8), (offsets - start).view(np.uint8), text]


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
    names = model_features()
    frame = cached_historical_features(store, entities, cache_dir)
    if len(frame) != len(entities):
        raise HybridopsError(
            f"Feast returned {len(frame)} rows for {len(entities)} entity rows; refusing a training set "
            "that lost or duplicated flights"
        )
    if not _in_flight_id_order(frame):
        frame = frame.sort_values("flight_id", kind="mergesort")
    frame = with_request_features(frame.reset_index(drop=True))
    for name in names:
        if frame[name].dtype != "float64":
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
