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

import pandas as pd
from feast import FeatureStore

from hybridops.features.store import (
    ENTITY_DF_COLUMNS,
    feature_names,
    historical_features,
    load_definitions_module,
)


def feature_data_version(store: FeatureStore) -> str:
    """Digest of every view's spec and of the size and mtime of each of its source files."""
    digest = hashlib.sha256()
    for view_name in sorted(load_definitions_module().VIEW_ENTITY):
        view = store.get_feature_view(view_name)
        digest.update(view.to_proto().spec.SerializeToString(deterministic=True))
        for path in sorted(glob.glob(str(view.batch_source.path))):  # type: ignore[union-attr]
            stat = Path(path).stat()
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _same_entities(rows: pd.DataFrame, cached: pd.DataFrame) -> pd.Series:
    """Per requested row: is it in ``cached`` with the very same entity keys and timestamp?"""
    known = cached.reindex(rows["flight_id"])
    same = pd.Series(rows["flight_id"].isin(cached.index).to_numpy(), index=rows.index)
    for column in ENTITY_DF_COLUMNS[1:]:
        left = rows[column].to_numpy()
        right = known[column].to_numpy()
        if column == "event_timestamp":
            left = pd.to_datetime(left).as_unit("ns").asi8
            right = pd.to_datetime(right).as_unit("ns").asi8
        # A flight without a tail number has a null key on both sides, and null != null.
        equal = (left == right) | (pd.isna(left) & pd.isna(right))
        same &= pd.Series(equal, index=rows.index)
    return same


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

    found: list[pd.DataFrame] = []
    missing: list[pd.DataFrame] = []
    months: dict[str, pd.DataFrame | None] = {}
    for month, rows in entities.groupby("month_key", sort=True):
        path = folder / f"{month}.parquet"
        cached = pd.read_parquet(path).set_index("flight_id") if path.exists() else None
        months[str(month)] = cached
        hit = _same_entities(rows, cached) if cached is not None else pd.Series(False, index=rows.index)
        if hit.any() and cached is not None:
            found.append(cached.loc[rows.loc[hit, "flight_id"], features].reset_index())
        if not hit.all():
            missing.append(rows.loc[~hit])
    if missing:
        asked = pd.concat(missing, ignore_index=True)
        fresh = historical_features(store, asked)[[*ENTITY_DF_COLUMNS, "month_key", *features]]
        found.append(fresh[["flight_id", *features]])
        folder.mkdir(parents=True, exist_ok=True)
        for month, new in fresh.groupby("month_key", sort=True):
            cached = months.get(str(month))
            kept = new.set_index("flight_id").drop(columns="month_key")
            if cached is not None:
                kept = pd.concat([cached.drop(index=kept.index, errors="ignore"), kept])
            path = folder / f"{month}.parquet"
            staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            kept.reset_index().to_parquet(staged, index=False)
            staged.replace(path)  # readers never see a half-written file
    out = entities.reset_index(drop=True)
    if not found:
        return out.assign(**{name: pd.Series(dtype="float64") for name in features})
    values = pd.concat(found, ignore_index=True).drop_duplicates("flight_id", keep="last")
    joined = values.set_index("flight_id")[features].reindex(out["flight_id"]).reset_index(drop=True)
    return out.join(joined)
