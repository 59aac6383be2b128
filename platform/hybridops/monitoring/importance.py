"""Drift weighted by what the model uses: the champion's LightGBM gain importances.

A drifted feature the model barely splits on cannot hurt its predictions much; a small shift of the
feature that carries half of the gain can. Each feature's weight is its share of the champion's total
gain (``Booster.feature_importance(importance_type="gain")``), and the month's **drifted importance** is
the sum of the weights of its drifted features: 0 when nothing the model uses drifted, 1 when every
feature it splits on did. Retraining is recommended (and the drift alert fires) when it reaches
``monitoring.drifted_importance_threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def gain_weights(booster: Any) -> dict[str, float]:
    """Each feature's share of the booster's total gain (all zero for a model without a split)."""
    names = list(booster.feature_name())
    gains = np.asarray(booster.feature_importance(importance_type="gain"), dtype="float64")
    total = float(gains.sum())
    if total <= 0:
        return dict.fromkeys(names, 0.0)
    return {name: float(gain / total) for name, gain in zip(names, gains, strict=True)}


def uniform_weights(features: Sequence[str]) -> dict[str, float]:
    """Equal weights (the drifted share of the features) when no model importances are at hand."""
    return dict.fromkeys(features, 1.0 / len(features)) if features else {}


def drifted_importance(feature_drift_df: pd.DataFrame, weights: Mapping[str, float]) -> float:
    """The total weight of the drifted features of ``feature_drift_df`` (``feature``, ``drifted``)."""
    drifted = feature_drift_df.loc[feature_drift_df["drifted"].astype(bool), "feature"]
    return float(sum(weights.get(str(name), 0.0) for name in drifted))
