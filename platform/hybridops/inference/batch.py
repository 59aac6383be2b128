"""Batch scoring of a month of flights with a LightGBM Booster on point-in-time Feast features.

* Entities: every flight of the month in ``fct_flights`` (``month_key``), *including cancelled ones*: a user
  wants a probability before knowing whether the flight will operate. ``cancelled`` and ``delayed_15`` are
  carried along as outcome columns (for monitoring), never as features.
* Features: ``hybridops.features.store.historical_features`` with ``event_timestamp = sched_dep_utc -
  model.horizon_minutes`` (the as-of time), so each flight gets only what was known at the prediction
  horizon before its scheduled departure (the same retrieval as training). The request-time features come
  from the flight's request columns through ``hybridops.features.request``, as in training and serving.
* Scores: ``booster.predict`` on the features in the order of ``booster.feature_name()`` (the order the
  model was trained with, not the frame's column order); every feature is cast to float64 (nulls -> NaN,
  which LightGBM treats as missing).
* Output: table ``predictions`` (``flight_id, month_key, event_timestamp, delay_probability, delayed,
  model_name, model_version, scored_at, run_id``), ``delayed = delay_probability >= DECISION_THRESHOLD``.
  A run replaces all of the month's rows (whatever model scored them before), so re-runs never duplicate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd

from hybridops.errors import HybridopsError
from hybridops.features.entities import flight_entities
from hybridops.features.keys import DEFAULT_HORIZON_MINUTES
from hybridops.features.pit_cache import cached_historical_features
from hybridops.features.request import model_features, with_request_features
from hybridops.warehouse.db import replace_rows

if TYPE_CHECKING:  # Feast is imported by the functions that use it (~4 s)
    from feast import FeatureStore

DECISION_THRESHOLD = 0.5
PREDICTIONS_TABLE = "predictions"
PREDICTION_COLUMNS = [
    "flight_id",
    "month_key",
    "event_timestamp",
    "delay_probability",
    "delayed",
    "model_name",
    "model_version",
    "scored_at",
    "run_id",
]


class MissingFeaturesError(HybridopsError):
    """The frame to score lacks features the model was trained with."""


@dataclass(frozen=True)
class ScoringResult:
    """One scored month: ``predictions`` as written, ``features`` the frame the model saw (entities,
    outcome columns and features; the input of drift monitoring), ``positive_rate`` the share of flights
    predicted delayed (``nan`` for an empty month)."""

    month_key: str
    rows: int
    predictions: pd.DataFrame
    features: pd.DataFrame
    positive_rate: float


def scoring_entities(
    con: duckdb.DuckDBPyConnection,
    month_key: str | Sequence[str],
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
) -> pd.DataFrame:
    """The flights of one month (or several) from ``fct_flights`` as a Feast entity frame plus the
    outcome columns, in departure order.

    Cancelled flights are kept (flagged by ``cancelled``); ``delayed_15`` is null for them.
    """
    months = [month_key] if isinstance(month_key, str) else list(month_key)
    frame = flight_entities(con, months, horizon_minutes)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"])
    frame["cancelled"] = frame["cancelled"].astype("boolean")
    frame["delayed_15"] = frame["delayed_15"].astype("boolean")
    return frame.reset_index(drop=True)


def score(booster: lgb.Booster, frame: pd.DataFrame, features: Sequence[str] | None = None) -> np.ndarray:
    """Delay probabilities of each row of ``frame``.

    The column order is the booster's ``feature_name()``. ``features`` (optional) is the feature list the
    caller serves, e.g. ``model_features()``; a model feature outside it or outside ``frame`` raises
    ``MissingFeaturesError`` naming the missing features.
    """
    model_features = list(booster.feature_name())
    missing = [name for name in model_features if name not in frame.columns]
    if missing:
        raise MissingFeaturesError(f"the frame to score lacks the model's features {missing}")
    if features is not None:
        unserved = [name for name in model_features if name not in set(features)]
        if unserved:
            raise MissingFeaturesError(f"the model expects features the feature service lacks: {unserved}")
    if len(frame) == 0:
        return np.empty(0, dtype="float64")
    matrix = frame[model_features].apply(pd.to_numeric, errors="coerce").astype("float64").to_numpy()
    return np.asarray(booster.predict(matrix), dtype="float64")


def _predictions_frame(
    entities: pd.DataFrame,
    probabilities: np.ndarray,
    model_name: str,
    model_version: str,
    scored_at: datetime,
    run_id: str,
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "flight_id": entities["flight_id"].astype("string"),
            "month_key": entities["month_key"].astype("string"),
            "event_timestamp": pd.to_datetime(entities["event_timestamp"]).astype("datetime64[us]"),
            "delay_probability": pd.Series(probabilities, index=entities.index, dtype="float64"),
        }
    )
    frame["delayed"] = (frame["delay_probability"] >= DECISION_THRESHOLD).astype("bool")
    frame["model_name"] = pd.Series(model_name, index=frame.index, dtype="string")
    frame["model_version"] = pd.Series(model_version, index=frame.index, dtype="string")
    frame["scored_at"] = pd.Series(pd.Timestamp(scored_at), index=frame.index).astype("datetime64[us]")
    frame["run_id"] = pd.Series(run_id, index=frame.index, dtype="string")
    return frame[PREDICTION_COLUMNS].reset_index(drop=True)


def score_month(
    con: duckdb.DuckDBPyConnection,
    store: FeatureStore,
    booster: lgb.Booster,
    model_name: str,
    model_version: str | int,
    month_key: str,
    run_id: str,
    cache_dir: Path | None = None,
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
) -> ScoringResult:
    """Score every flight of ``month_key`` and replace the month's rows of ``predictions``.

    With ``cache_dir``, features already retrieved for these flights on the same feature data (the
    training holdout) are reused (``hybridops.features.pit_cache``).
    """
    return score_months(
        con, store, booster, model_name, model_version, [month_key], run_id, cache_dir, horizon_minutes
    )[month_key]


def score_months(
    con: duckdb.DuckDBPyConnection,
    store: FeatureStore,
    booster: lgb.Booster,
    model_name: str,
    model_version: str | int,
    month_keys: Sequence[str],
    run_id: str,
    cache_dir: Path | None = None,
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
) -> dict[str, ScoringResult]:
    """``score_month`` for several months at once: one point-in-time retrieval (Feast answers one query
    for many months much faster than one query per month) and one write; the result per month is the
    same as scoring each month on its own.
    """
    months = list(dict.fromkeys(month_keys))
    entities = scoring_entities(con, months, horizon_minutes)
    features = with_request_features(cached_historical_features(store, entities, cache_dir))
    # As the model sees them: float64, nulls as NaN (Feast's dtype depends on which rows one query holds).
    names = model_features()
    features[names] = features[names].apply(pd.to_numeric, errors="coerce").astype("float64")
    probabilities = score(booster, features, names)
    scored_at = datetime.now(UTC).replace(tzinfo=None)  # the warehouse's clock: naive UTC
    predictions = _predictions_frame(
        features, probabilities, model_name, str(model_version), scored_at, run_id
    )
    replace_rows(con, PREDICTIONS_TABLE, predictions, where={"month_key": months})
    results: dict[str, ScoringResult] = {}
    by_month = predictions["month_key"].to_numpy()
    for month in months:
        rows = by_month == month
        month_predictions = predictions[rows].reset_index(drop=True)
        results[month] = ScoringResult(
            month_key=month,
            rows=len(month_predictions),
            predictions=month_predictions,
            features=features[rows].reset_index(drop=True),
            positive_rate=float(month_predictions["delayed"].mean()) if len(month_predictions) else math.nan,
        )
    return results
