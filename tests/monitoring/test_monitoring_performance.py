"""Live performance on hand-made predictions and outcomes."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hybridops.monitoring.performance import performance


def _frames(probabilities, delayed, cancelled):
    ids = [f"f{i}" for i in range(len(probabilities))]
    predictions = pd.DataFrame({"flight_id": ids, "delay_probability": probabilities})
    outcomes = pd.DataFrame(
        {
            "flight_id": ids,
            "delayed_15": pd.array(delayed, dtype="boolean"),
            "cancelled": pd.array(cancelled, dtype="boolean"),
        }
    ).sample(frac=1, random_state=0)  # the join is by flight_id, not by position
    return predictions, outcomes


def test_performance_on_hand_made_predictions() -> None:
    # f4 is cancelled (no outcome) and is excluded even though it carries a prediction.
    predictions, outcomes = _frames(
        [0.9, 0.2, 0.6, 0.4, 0.99],
        [True, False, False, True, None],
        [False, False, False, False, True],
    )
    out = performance(predictions, outcomes)
    assert out["rows"] == 4
    # pairs (positive, negative): (0.9, 0.2) (0.9, 0.6) (0.4, 0.2) ok, (0.4, 0.6) wrong -> AUC 3/4
    assert out["auc"] == pytest.approx(0.75)
    # brier = (0.1^2 + 0.2^2 + 0.6^2 + 0.6^2) / 4 = (0.01 + 0.04 + 0.36 + 0.36) / 4 = 0.1925
    assert out["brier"] == pytest.approx(0.1925)
    expected_logloss = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.4)) / 4
    assert out["logloss"] == pytest.approx(expected_logloss)
    assert out["positive_rate"] == pytest.approx(0.5)
    assert out["predicted_rate"] == pytest.approx(0.5)  # 0.9 and 0.6 are >= 0.5
    assert out["mean_probability"] == pytest.approx(0.525)
    assert out["note"] is None


def test_single_class_month_has_no_auc_but_the_other_metrics() -> None:
    predictions, outcomes = _frames([0.1, 0.3, 0.2], [False, False, False], [False, False, False])
    out = performance(predictions, outcomes)
    assert out["rows"] == 3
    assert out["auc"] is None
    assert "single class" in out["note"]
    assert out["brier"] == pytest.approx((0.01 + 0.09 + 0.04) / 3)
    assert out["logloss"] == pytest.approx(-(math.log(0.9) + math.log(0.7) + math.log(0.8)) / 3)
    assert out["positive_rate"] == 0.0


def test_month_without_known_outcomes() -> None:
    predictions, outcomes = _frames([0.1, 0.7], [None, None], [True, True])
    out = performance(predictions, outcomes)
    assert out["rows"] == 0 and out["auc"] is None and out["brier"] is None
    assert "no flight" in out["note"]
    with pytest.raises(ValueError, match="delayed_15"):
        performance(predictions, outcomes.drop(columns="delayed_15"))
