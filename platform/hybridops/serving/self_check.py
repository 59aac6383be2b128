"""The service's start-up self-check: its fast paths against the libraries' public APIs, on probe rows.

The service reads Feast's online store through its own readers (:mod:`hybridops.serving.online_sqlite`,
:mod:`hybridops.serving.online_redis`, on Feast's private table and key layout) and predicts through
LightGBM's C API (:mod:`hybridops.serving.booster_predict`). Both are listed in ``docs/internals.md``. Before
the service calls itself ready, and for every model it installs, they must give what Feast's
``FeatureStore.get_online_features`` and LightGBM's ``Booster.predict`` give:

* :func:`check_reader`: probe entities (keys that the store holds for each feature view, plus a key no
  view has) read both ways; every value, every missing row and every event time must agree.
* :func:`check_predictor`: probe rows built from the model's own split thresholds (each side of a split,
  NaNs, all-missing) predicted both ways, one row at a time and as a batch; equal to the last bit.

A difference raises :class:`SelfCheckError`: the model is not installed, the store reader is not used, and
``/readyz`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

from hybridops.errors import HybridopsError

if TYPE_CHECKING:
    from feast import FeatureStore

    from hybridops.serving.booster_predict import BoosterPredictor
    from hybridops.serving.features import OnlineFeatureReader

MISSING_KEY = "__hybridops_self_check_missing__"
KEYS_PER_VIEW = 4
PROBE_ROWS = 24


class SelfCheckError(HybridopsError):
    """A fast path of the service disagrees with the library's public API on probe rows."""


# --- the online store reader --------------------------------------------------------------------------
def probe_entity_rows(reader: OnlineFeatureReader, columns: Sequence[str]) -> list[dict[str, str | None]]:
    """Rows of entity keys: row i takes the i-th sampled key of each view's entity (keys the store holds,
    sampled through the reader's own layout), the last row a key that no view has."""
    keys: dict[str, list[str]] = {}
    for view, sampled in zip(reader.views, reader.sample_keys(KEYS_PER_VIEW), strict=True):
        if sampled and view.entity not in keys:
            keys[view.entity] = sampled
    depth = max((len(found) for found in keys.values()), default=0)
    return [
        {
            column: keys[column][i] if column in keys and i < len(keys[column]) else MISSING_KEY
            for column in columns
        }
        for i in range(depth + 1)
    ]


def check_reader(reader: OnlineFeatureReader, store: FeatureStore, rows: list[dict[str, str | None]]) -> int:
    """``reader.read(rows)`` equals ``store.get_online_features`` on ``rows``; returns the values compared.

    Raises:
        SelfCheckError: naming the first differences (entity, feature, both values).
    """
    batch = reader.read(rows)
    # The stored views the reader reads (the service's on-demand view needs request data; it is no read).
    refs = [f"{view.name}:{name}" for view in reader.views for name in view.features]
    reference = store.get_online_features(features=refs, entity_rows=rows).to_dict(
        include_event_timestamps=True
    )
    differences: list[str] = []
    compared = 0
    for v, view in enumerate(reader.views):
        for i, row in enumerate(rows):
            feast_values = [reference[name][i] for name in view.features]
            feast_missing = all(value is None for value in feast_values)
            if bool(batch.missing[i, v]) != feast_missing:
                differences.append(
                    f"{view.name} {view.entity}={row[view.entity]!r}: hybridops "
                    f"{'missing' if batch.missing[i, v] else 'present'}, Feast "
                    f"{'missing' if feast_missing else 'present'}"
                )
                continue
            for name, column, expected in zip(view.features, view.columns, feast_values, strict=True):
                ours = float(batch.matrix[i, column])
                theirs = math.nan if expected is None else float(expected)
                compared += 1
                if not (ours == theirs or (math.isnan(ours) and math.isnan(theirs))):
                    differences.append(
                        f"{view.name}.{name} {view.entity}={row[view.entity]!r}: hybridops {ours!r}, "
                        f"Feast {theirs!r}"
                    )
            if not feast_missing:
                stamps = {reference[f"{name}__ts"][i] for name in view.features}
                ours_ts = batch.event_ts[i, v]
                if stamps != {math.floor(ours_ts)}:
                    differences.append(
                        f"{view.name} {view.entity}={row[view.entity]!r}: event time hybridops {ours_ts!r}, "
                        f"Feast {sorted(stamps)}"
                    )
    if differences:
        raise SelfCheckError(
            f"the service's reader of the {store.config.online_store.type} online store disagrees with Feast's "
            f"get_online_features on {len(differences)} probe value(s), first: "
            + "; ".join(differences[:3])
            + f". Feast {metadata.version('feast')} is installed; serve with the version hybridops pins "
            "(docs/internals.md)."
        )
    return compared


def check_store(reader: OnlineFeatureReader, store: FeatureStore) -> int:
    """:func:`check_reader` on :func:`probe_entity_rows` of this store."""
    from hybridops.features.store import ENTITY_COLUMNS

    return check_reader(reader, store, probe_entity_rows(reader, ENTITY_COLUMNS))


# --- the predictor -------------------------------------------------------------------------------------
def _thresholds(booster: lgb.Booster) -> list[list[float]]:
    """Per feature, the numeric split thresholds of the model (from LightGBM's public ``dump_model``)."""
    found: list[set[float]] = [set() for _ in range(booster.num_feature())]
    stack: list[dict[str, Any]] = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        threshold = node.get("threshold")
        if isinstance(threshold, int | float):
            found[node["split_feature"]].add(float(threshold))
        else:  # categorical: "1||3||7"
            found[node["split_feature"]].update(float(x) for x in str(threshold).split("||") if x)
        stack += [node["left_child"], node["right_child"]]
    return [sorted(values) for values in found]


def probe_matrix(booster: lgb.Booster, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows that reach many leaves: each feature just below or above one of its split thresholds, some
    features NaN (LightGBM's missing-value branches), one row all NaN and one all zero."""
    rng = np.random.default_rng(seed)
    thresholds = _thresholds(booster)
    matrix = np.zeros((rows, booster.num_feature()))
    for j, values in enumerate(thresholds):
        if values:
            picked = np.array(values)[rng.integers(0, len(values), rows)]
            matrix[:, j] = picked + rng.choice([-1e-6, 1e-6], rows) * np.maximum(1.0, np.abs(picked))
        else:
            matrix[:, j] = rng.normal(0.0, 10.0, rows)
    matrix[rng.random(matrix.shape) < 0.2] = np.nan
    matrix[0, :] = np.nan
    matrix[1, :] = 0.0
    return matrix


def check_predictor(predictor: BoosterPredictor, booster: lgb.Booster) -> int:
    """``predictor.predict`` equals ``booster.predict`` on :func:`probe_matrix`, row by row and as a batch.

    Raises:
        SelfCheckError: with the first differing row.
    """
    matrix = probe_matrix(booster)
    expected = np.asarray(booster.predict(matrix), dtype=np.float64)
    batch = predictor.predict(matrix)
    single = np.concatenate([predictor.predict(matrix[i : i + 1]) for i in range(len(matrix))])
    for name, got in (("batch", batch), ("single-row", single)):
        if got.shape != expected.shape or not np.array_equal(got, expected):
            bad = int(np.argmax(got != expected)) if got.shape == expected.shape else 0
            raise SelfCheckError(
                f"the LightGBM fast predictor ({name} path) disagrees with Booster.predict on probe row "
                f"{bad}: {got.reshape(-1)[bad : bad + 1]!r} vs {expected[bad]!r} (LightGBM {lgb.__version__}); "
                "serve with the LightGBM version hybridops pins (docs/internals.md)."
            )
    return len(matrix)
