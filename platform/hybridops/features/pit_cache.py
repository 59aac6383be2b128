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

import numpy as np
import pandas as pd
from feast import FeatureStore

from hybridops.features.store import (
    ENTITY_DF_COLUMNS,
    feature_names,
    historical_features,
    load_definitions_module,
)

# Cache files carry each flight's entity-key hash (column ``_KEY``); the format is part of the version,
# so files of an earlier layout are never read.
CACHE_FORMAT = "2"
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
    """A 64-bit hash per row of its entity keys and timestamp (a null key hashes alike on both sides)."""
    keys = rows[ENTITY_DF_COLUMNS[1:]].reset_index(drop=True)
    stamps = pd.to_datetime(keys["event_timestamp"])
    keys["event_timestamp"] = stamps.dt.as_unit("ns").astype("int64")
    return pd.util.hash_pandas_object(keys, index=False).to_numpy()


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
    flight_ids = out["flight_id"].to_numpy()

    found: list[tuple[np.ndarray, pd.DataFrame]] = []  # (row positions in ``out``, their features)
    missing: list[np.ndarray] = []
    months: dict[str, pd.DataFrame | None] = {}
    for month, positions in sorted(out.groupby("month_key", sort=True).indices.items()):
        path = folder / f"{month}.parquet"
        cached = pd.read_parquet(path) if path.exists() else None
        months[str(month)] = cached
        if cached is None:
            missing.append(positions)
            continue
        at = pd.Index(cached["flight_id"]).get_indexer(flight_ids[positions])
        hit = at >= 0
        hit[hit] = cached[_KEY].to_numpy()[at[hit]] == keys[positions[hit]]
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
            cached = months.get(str(month))
            if cached is not None:
                rows = pd.concat([cached[~cached["flight_id"].isin(rows["flight_id"])], rows])
            path = folder / f"{month}.parquet"
            staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            rows.to_parquet(staged, index=False)
            staged.replace(path)  # readers never see a half-written file
    if not found:
        return out.assign(**{name: pd.Series(dtype="float64") for name in features})
    values = pd.concat([frame for _, frame in found], ignore_index=True)
    values.index = pd.RangeIndex(len(out)).take(np.concatenate([positions for positions, _ in found]))
    return out.join(values.sort_index())
