"""Point-in-time features kept per month and feature-data version, so one pipeline asks Feast once.

Training, batch scoring and the retraining loop retrieve the same flights' features several times in
one pipeline run: the holdout month is scored later, and the retraining set covers every month that was
scored. A flight's point-in-time features depend only on its entity row and on the feature data, so a
month's flights are stored with their entity keys under a version of every view's definition and source
files, and read back (for the same keys and timestamp) instead of repeating Feast's point-in-time join.
Rebuilding a month's feature tables or re-applying a changed view changes the version, which empties
the cache.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybridops.features.entities import arrow_string_types
from hybridops.features.store import (
    ENTITY_COLUMNS,
    ENTITY_DF_COLUMNS,
    feature_names,
    historical_features,
    load_definitions_module,
)

if TYPE_CHECKING:  # Feast is imported by the functions that use it (~4 s)
    from feast import FeatureStore

# Cache files carry each flight's key (column ``_KEY``); the format is part of the version, so files of
# an earlier layout are never read. Format 3: the key hashes the flight_id too.
CACHE_FORMAT = "3"
_KEY = "_entity_key"


def feature_data_version(store: FeatureStore) -> str:
    """Digest of every view's spec and of the size and mtime of each of its source files."""
    digest = hashlib.sha256(f"format {CACHE_FORMAT}".encode())
    for view_name in sorted(load_definitions_module().VIEW_ENTITY):
        view = store.get_feature_view(view_name)
        digest.update(view.to_proto().spec.SerializeToString(deterministic=True))
        for path in sorted(glob.glob(str(view.batch_source.path))):  # type: ignore[union-attr]
            stat = Path(path).stat()
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def entity_keys(rows: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of its flight_id, entity keys and timestamp.

    A null key hashes alike on both sides, and object and ``string`` columns of the same values give the
    same keys.
    """
    keys = rows[ENTITY_DF_COLUMNS].reset_index(drop=True)
    # flight_id is unique per row: hashed value by value, not through pandas' factorization.
    columns: dict[str, pd.Series | pd.Categorical | np.ndarray] = {
        "flight_id": pd.util.hash_array(keys["flight_id"].to_numpy(), categorize=False)
    }
    for name in ENTITY_COLUMNS:
        columns[name] = _categorical(keys[name])
    columns["event_timestamp"] = _nanoseconds(keys["event_timestamp"])
    return pd.util.hash_pandas_object(pd.DataFrame(columns), index=False).to_numpy()


def _nanoseconds(stamps: pd.Series) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC for timezone-aware ones)."""
    if isinstance(stamps.dtype, np.dtype) and stamps.dtype.kind == "M":
        return stamps.to_numpy().astype("datetime64[ns]").view("int64")  # ~50x faster than through pandas
    return pd.to_datetime(stamps).array.as_unit("ns").asi8


def _categorical(column: pd.Series) -> pd.Series | pd.Categorical:
    """An Arrow-backed string column as a categorical of its distinct values, any other column as is.

    ``hash_pandas_object`` hashes a categorical as it hashes the values themselves (each distinct value
    once, the way it factorizes an object column); Arrow's dictionary encoding spares it the conversion
    of every value to a Python object.
    """
    if not (isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow"):
        return column
    array = pa.array(column.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    encoded = pc.dictionary_encode(array)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    categories = pd.Index(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    return pd.Categorical.from_codes(codes, categories=categories, validate=False)


def _flight_ids(column: pd.Series) -> pa.Array:
    """A column of flight ids as one Arrow array (copied only from an object column)."""
    source = column.to_numpy() if pd.api.types.is_object_dtype(column.dtype) else column.array
    array = pa.array(source, type=pa.large_string())
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _read_month(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A cache file (its ``columns``), strings as ``string[pyarrow]``."""
    return pq.read_table(path, columns=columns).to_pandas(types_mapper=arrow_string_types)


def cached_historical_features(
    store: FeatureStore, entities: pd.DataFrame, cache_dir: Path | None
) -> pd.DataFrame:
    """``historical_features(store, entities)``, with the flights already retrieved on the same feature
    data (same entity keys and timestamp) read from the cache; the others are retrieved in one Feast query
    and added to their month's file. Without a ``cache_dir`` (or a ``month_key`` column) it is exactly
    ``historical_features``.
    """
    if cache_dir is None or "month_key" not in entities.columns:
        return historical_features(store, entities)
    version = feature_data_version(store)
    folder = cache_dir / version
    if cache_dir.exists():
        for stale in cache_dir.iterdir():
            if stale.name != version:
                shutil.rmtree(stale, ignore_errors=True)
    features = feature_names()
    out = entities.reset_index(drop=True)
    keys = entity_keys(out)
    flight_ids = _flight_ids(out["flight_id"])

    found: list[tuple[np.ndarray, pd.DataFrame]] = []  # (row positions in ``out``, their features)
    missing: list[np.ndarray] = []
    cached_months: set[str] = set()
    for month, positions in sorted(out.groupby("month_key", sort=True).indices.items()):
        path = folder / f"{month}.parquet"
        if not path.exists():
            missing.append(positions)
            continue
        cached_months.add(str(month))
        cached = _read_month(path, ["flight_id", _KEY, *features])
        # A flight is cached once per file, so its key is unique there unless two hashes collide; a
        # colliding pair is never served (it is retrieved again).
        index = pd.Index(cached[_KEY].to_numpy())
        if not index.is_unique:
            unique = ~index.duplicated(keep=False)
            cached, index = cached[unique].reset_index(drop=True), index[unique]
        at = index.get_indexer(keys[positions])
        hit = at >= 0
        # The key is a hash: a hit must also be the same flight.
        same = pc.equal(_flight_ids(cached["flight_id"]).take(at[hit]), flight_ids.take(positions[hit]))
        hit[hit] = same.to_numpy(zero_copy_only=False)
        if hit.any():
            found.append((positions[hit], cached[features].iloc[at[hit]]))
        if not hit.all():
            missing.append(positions[~hit])
    if missing:
        positions = np.concatenate(missing)
        asked = out.iloc[positions].reset_index(drop=True)
        fresh = historical_features(store, asked)
        # Aligned by flight: a row Feast did not return gets nulls, as in historical_features.
        values = fresh.set_index("flight_id")[features].reindex(asked["flight_id"]).reset_index(drop=True)
        found.append((positions, values))
        kept = asked[ENTITY_DF_COLUMNS].assign(**{_KEY: keys[positions]}).join(values)
        folder.mkdir(parents=True, exist_ok=True)
        for month, rows in kept.groupby(asked["month_key"], sort=True):
            path = folder / f"{month}.parquet"
            if str(month) in cached_months:
                cached = _read_month(path)
                rows = pd.concat([cached[~cached["flight_id"].isin(rows["flight_id"])], rows])
            staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            rows.to_parquet(staged, index=False)
            staged.replace(path)  # readers never see a half-written file
    if not found:
        return out.assign(**{name: pd.Series(dtype="float64") for name in features})
    values = pd.concat([frame for _, frame in found], ignore_index=True)
    values.index = pd.RangeIndex(len(out)).take(np.concatenate([positions for positions, _ in found]))
    return out.join(values.sort_index())
