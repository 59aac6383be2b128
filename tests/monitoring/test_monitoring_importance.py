"""Drift weighted by the gain importances of a real LightGBM booster."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from hybridops.monitoring.importance import drifted_importance, gain_weights, uniform_weights


def _booster() -> lgb.Booster:
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"strong": rng.normal(0, 1, 4000), "weak": rng.normal(0, 1, 4000)})
    x["unused"] = 1.0  # constant: LightGBM never splits on it
    y = (x["strong"] + 0.1 * x["weak"] + rng.normal(0, 0.5, 4000) > 0).astype(int)
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 1, "deterministic": True}
    return lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=20)


def test_gain_weights_are_shares_of_the_boosters_gain() -> None:
    weights = gain_weights(_booster())
    assert list(weights) == ["strong", "weak", "unused"]
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["strong"] > 0.8 > weights["weak"] > 0 and weights["unused"] == 0.0


def test_drifted_importance_sums_the_drifted_features_weights() -> None:
    weights = {"strong": 0.9, "weak": 0.1, "unused": 0.0}
    drift = pd.DataFrame({"feature": ["strong", "weak", "unused"], "drifted": [False, True, True]})
    assert drifted_importance(drift, weights) == pytest.approx(0.1)
    drift["drifted"] = [True, False, False]
    assert drifted_importance(drift, weights) == pytest.approx(0.9)
    assert uniform_weights(["a", "b", "c", "d"]) == dict.fromkeys("abcd", 0.25) and uniform_weights([]) == {}
