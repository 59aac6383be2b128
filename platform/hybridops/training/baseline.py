"""The plain baseline every candidate must beat: LightGBM without a feature store.

The baseline is what anyone could train from the warehouse alone: the **request columns** of a prediction
(carrier, origin, destination as categories, flight number, scheduled local hour and minute, day of week and
day of year) and the **origin weather at the scheduled hour** (the weather columns ``fct_flights`` carries,
joined on the departure's own hour, i.e. more recent than the horizon allows the champion). It is trained
with the champion's LightGBM parameters on the same training months and measured on the same holdout
flights (departed flights of ``fct_flights``, label ``delayed_15``), so the gate's comparison is like for
like. If the Feast features do not beat it by ``gate.min_baseline_margin``, the feature store adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd

from hybridops.errors import HybridopsError
from hybridops.settings import TrainingSettings
from hybridops.training.split import SplitPlan
from hybridops.training.train import NUM_THREADS, Metrics, dataset_params, lgb_params, metrics_of
from hybridops.warehouse.conform import WEATHER_COLUMNS

CATEGORICAL = ["carrier", "origin", "dest"]
REQUEST_COLUMNS = [*CATEGORICAL, "flight", "sched_hour", "sched_minute", "day_of_week", "day_of_year"]
# The origin's weather at the scheduled hour: the columns fct_flights joins from the weather table.
WEATHER_AT_SCHEDULED_HOUR = list(WEATHER_COLUMNS)
BASELINE_FEATURES = [*REQUEST_COLUMNS, *WEATHER_AT_SCHEDULED_HOUR]

_BASELINE_SQL = f"""
    select flight_id, month_key, cast(delayed_15 as bigint) as label,
           carrier, origin, dest, cast(flight as double) as flight,
           cast(hour(sched_dep_local) as double) as sched_hour,
           cast(minute(sched_dep_local) as double) as sched_minute,
           cast(isodow(sched_dep_local) as double) as day_of_week,
           cast(dayofyear(sched_dep_local) as double) as day_of_year,
           {", ".join(f"cast({c} as double) as {c}" for c in WEATHER_AT_SCHEDULED_HOUR)}
    from fct_flights
    where list_contains(?, month_key) and not coalesce(cancelled, false) and delayed_15 is not null
    order by flight_id
"""


@dataclass(frozen=True)
class BaselineResult:
    """The baseline's holdout and training metrics, and its features."""

    holdout_metrics: Metrics
    train_metrics: Metrics
    features: list[str]


def baseline_frame(con: duckdb.DuckDBPyConnection, months: list[str]) -> pd.DataFrame:
    """Departed flights of ``months`` with the label and the baseline's columns (categories shared by all
    months, so the training and holdout rows code a carrier alike)."""
    frame = con.execute(_BASELINE_SQL, [list(months)]).df()
    for column in CATEGORICAL:
        frame[column] = frame[column].astype("category")
    return frame


def train_baseline(
    con: duckdb.DuckDBPyConnection, plan: SplitPlan, settings: TrainingSettings
) -> BaselineResult:
    """Train the plain baseline on ``plan.train`` and measure it on ``plan.holdout``.

    Raises:
        HybridopsError: no training or holdout rows, or a single label class in training.
    """
    frame = baseline_frame(con, [*plan.train, plan.holdout])
    train = frame[frame["month_key"].isin(plan.train)]
    holdout = frame[frame["month_key"] == plan.holdout]
    if train.empty or holdout.empty:
        raise HybridopsError(
            f"cannot train the baseline: {len(train)} training rows ({','.join(plan.train)}) and "
            f"{len(holdout)} holdout rows ({plan.holdout})"
        )
    if train["label"].nunique() < 2:
        raise HybridopsError("cannot train the baseline: the training months hold only one label class")
    dataset = lgb.Dataset(
        train[BASELINE_FEATURES],
        label=train["label"].to_numpy(),
        categorical_feature=CATEGORICAL,
        params=dataset_params(settings),
    ).construct()
    booster = lgb.train(lgb_params(settings), dataset, num_boost_round=settings.num_boost_round)

    def scores(rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(booster.predict(rows[BASELINE_FEATURES], num_threads=NUM_THREADS), dtype="float64")

    return BaselineResult(
        holdout_metrics=metrics_of(holdout["label"].to_numpy(), scores(holdout)),
        train_metrics=metrics_of(train["label"].to_numpy(), scores(train)),
        features=list(BASELINE_FEATURES),
    )
