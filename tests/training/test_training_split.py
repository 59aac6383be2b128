"""Time-ordered split plans."""

from __future__ import annotations

import pandas as pd
import pytest

from hybridops.errors import HybridopsError
from hybridops.training.split import SplitPlan, plan_split, split_frame

YEAR = [f"2013-{m:02d}" for m in range(1, 13)]


def test_one_month_has_no_holdout() -> None:
    with pytest.raises(HybridopsError, match="at least two months"):
        plan_split(["2013-01"], None)
    with pytest.raises(HybridopsError, match="at least two months"):
        plan_split([], None)


def test_two_months_train_one_hold_out_the_other() -> None:
    assert plan_split(["2013-02", "2013-01"], None) == SplitPlan(
        train=["2013-01"], holdout="2013-02", score=["2013-02"]
    )


def test_twelve_months_default_to_the_first_half() -> None:
    plan = plan_split(list(reversed(YEAR)), None)
    assert plan.train == YEAR[:6]
    assert plan.holdout == "2013-07"
    assert plan.score == YEAR[6:]


def test_odd_count_trains_on_the_larger_half() -> None:
    plan = plan_split(YEAR[:3], None)
    assert plan == SplitPlan(train=YEAR[:2], holdout="2013-03", score=["2013-03"])


def test_explicit_train_months() -> None:
    plan = plan_split(YEAR, 9)
    assert plan.train == YEAR[:9]
    assert plan.holdout == "2013-10"
    assert plan.score == ["2013-10", "2013-11", "2013-12"]
    assert plan_split(YEAR, 11).score == ["2013-12"]
    with pytest.raises(HybridopsError, match="no holdout month"):
        plan_split(YEAR, 12)
    with pytest.raises(HybridopsError, match="no holdout month"):
        plan_split(YEAR[:2], 5)


def test_split_frame_by_month_key() -> None:
    frame = pd.DataFrame({"month_key": ["2013-01", "2013-02", "2013-03", "2013-01"], "x": [1, 2, 3, 4]})
    train, holdout = split_frame(frame, plan_split(["2013-01", "2013-02", "2013-03"], 1))
    assert train["x"].tolist() == [1, 4]
    assert holdout["x"].tolist() == [2]  # the later scored month is in neither
