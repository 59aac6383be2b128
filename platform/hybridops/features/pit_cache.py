"""Point-in-time features kept per month and feature-data version, so one pipeline asks Feast once.

Training, batch scoring and the retraining loop retrieve the same flights' features several times in
one pipeline run: the holdout month is scored later, and the retraining set covers every month that was
scored. A flight's point-in-time features depend only on its entity row and on the feature data, so a
month's result is stored under a key made of both (the entity rows' content hash, and a version of every
view's definition and source files) and read back instead of repeating Feast's point-in-time join.
Rebuilding a month's feature tables or re-applying a changed view changes the version, which empties
the cache.
"""

from __future__ import annotations

import glob
import hashlib
import shutil
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from hybridops.features.store import ENTITY_DF_COLUMNS, historical_features, load_definitions_module


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


def _rows_digest(rows: pd.DataFrame) -> str:
    ordered = rows[ENTITY_DF_COLUMNS].sort_values("flight_id", kind="mergesort").reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes()).hexdigest()[
        :20
    ]


def cached_historical_features(store: FeatureStore, entities: pd.DataFrame, cache_dir: Path) -> pd.DataFrame:
    """``historical_features(store, entities)``, each ``month_key`` of ``entities`` read from the cache
    when the same rows were retrieved on the same feature data; the months not found are retrieved in one
    Feast query and stored.
    """
    version = feature_data_version(store)
    folder = cache_dir / version
    if cache_dir.exists():
        for stale in cache_dir.iterdir():
            if stale.name != version:
                shutil.rmtree(stale, ignore_errors=True)
    names = load_definitions_module().VIEW_FEATURES
    features = [name for view in names.values() for name in view]

    found: list[pd.DataFrame] = []
    missing: list[tuple[Path, pd.DataFrame]] = []
    for month, rows in entities.groupby("month_key", sort=True):
        path = folder / f"{month}-{_rows_digest(rows)}.parquet"
        if path.exists():
            found.append(pd.read_parquet(path))
        else:
            missing.append((path, rows))
    if missing:
        fresh = historical_features(store, pd.concat([rows for _, rows in missing], ignore_index=True))
        folder.mkdir(parents=True, exist_ok=True)
        by_flight = fresh.set_index("flight_id")[features]
        for path, rows in missing:
            part = by_flight.loc[rows["flight_id"]].reset_index()
            staged = path.with_suffix(".tmp")
            part.to_parquet(staged, index=False)
            staged.replace(path)  # readers never see a half-written file
            found.append(part)
    values = pd.concat(found, ignore_index=True).set_index("flight_id")[features] if found else None
    out = entities.reset_index(drop=True)
    if values is None:
        return out.assign(**{name: pd.Series(dtype="float64") for name in features})
    joined = values.reindex(out["flight_id"]).reset_index(drop=True)
    return out.join(joined)
