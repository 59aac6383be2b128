"""Time-ordered split of the loaded months: train on the earliest, hold out the next, score the rest.

With ``n`` loaded months (sorted), the first ``train_months`` months (default ``ceil(n / 2)``, at least 1)
train the model, the month right after them is the holdout (model selection, calibration, the promotion
gate) and every month after the training window, the holdout included, is scored for monitoring. There is
no random split: a flight is never evaluated by a model that trained on a later month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from hybridops.errors import HybridopsError


@dataclass(frozen=True)
class SplitPlan:
    train: list[str]
    holdout: str
    score: list[str]


def plan_split(months: list[str], train_months: int | None = None) -> SplitPlan:
    """Plan the split of ``months`` (any order, duplicates ignored).

    Raises:
        HybridopsError: fewer than two months, or ``train_months`` leaves no holdout month.
    """
    ordered = sorted(set(months))
    if len(ordered) < 2:
        raise HybridopsError(
            f"training needs at least two months (train + holdout), got {len(ordered)}: {ordered}; "
            "load another month"
        )
    if train_months is None:
        size = max(1, math.ceil(len(ordered) / 2))
        size = min(size, len(ordered) - 1)
    else:
        if train_months < 1:
            raise HybridopsError(f"training.train_months must be at least 1, got {train_months}")
        if train_months >= len(ordered):
            raise HybridopsError(
                f"training.train_months={train_months} leaves no holdout month among the "
                f"{len(ordered)} loaded months {ordered[0]}..{ordered[-1]}; lower it or load more months"
            )
        size = train_months
    return SplitPlan(train=ordered[:size], holdout=ordered[size], score=ordered[size:])


def split_frame(frame: pd.DataFrame, plan: SplitPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of the training months and rows of the holdout month (by ``month_key``)."""
    train = frame[frame["month_key"].isin(plan.train)].reset_index(drop=True)
    holdout = frame[frame["month_key"] == plan.holdout].reset_index(drop=True)
    return train, holdout
