"""Per-feature drift thresholds learnt from the training window's own month-to-month variation.

A fixed PSI threshold flags seasonal features every month: the weather of October is not the weather of
January to June, and trailing statistics move with the traffic. Yet the model was trained on months that
already differ that much from one another. So each feature's threshold is learnt from the reference
itself: every training month is compared with the whole training window, exactly as a scored month is,
and the feature's threshold is ``monitoring.learned_threshold_factor`` times the largest of these
month-against-window values (PSI and KS statistic each), never below the fixed ``psi_threshold`` /
``ks_threshold``. A scored month is then flagged for a feature only when it moves further from the
training window than any training month did, by a margin.

The KS threshold is capped at 1 (its largest value): a feature whose training months are already
completely apart can then be flagged by its PSI only, which keeps growing as a month moves further out.

With a single training month there is no variation to learn from: the fixed thresholds apply. With
``monitoring.drift_thresholds = "fixed"`` they always apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from hybridops.monitoring.drift import DriftReference
from hybridops.settings import MonitoringSettings, Settings, monitoring_settings


@dataclass(frozen=True)
class FeatureThresholds:
    """The PSI and KS thresholds of each feature, and how they were obtained."""

    psi: dict[str, float]
    ks: dict[str, float]
    source: str  # "learned from N months" or "fixed"


def fixed_thresholds(features: Sequence[str], settings: MonitoringSettings | Settings) -> FeatureThresholds:
    """``psi_threshold`` and ``ks_threshold`` for every feature."""
    config = monitoring_settings(settings)
    return FeatureThresholds(
        psi=dict.fromkeys(features, config.psi_threshold),
        ks=dict.fromkeys(features, config.ks_threshold),
        source="fixed",
    )


def learn_thresholds(
    reference: DriftReference,
    reference_frame: pd.DataFrame,
    settings: MonitoringSettings | Settings,
    month_column: str = "month_key",
) -> FeatureThresholds:
    """Thresholds from each training month's drift against the whole training window (module docstring).

    ``reference`` must have been prepared from ``reference_frame`` (the same rows), which holds the
    ``month_column`` of each row.

    Raises:
        ValueError: ``reference_frame`` lacks ``month_column``.
    """
    config = monitoring_settings(settings)
    features = reference.features
    if config.drift_thresholds == "fixed":
        return fixed_thresholds(features, config)
    if month_column not in reference_frame.columns:
        raise ValueError(f"the reference frame has no {month_column!r} column to learn thresholds from")
    months = sorted(reference_frame[month_column].dropna().unique())
    if len(months) < 2:
        return fixed_thresholds(features, config)
    worst_psi = dict.fromkeys(features, 0.0)
    worst_ks = dict.fromkeys(features, 0.0)
    for month in months:
        rows = reference_frame[reference_frame[month_column] == month]
        for name, measured in zip(features, reference.compare_all(rows, features), strict=True):
            if not math.isnan(measured["psi"]):
                worst_psi[name] = max(worst_psi[name], measured["psi"])
            if not math.isnan(measured["ks_stat"]):
                worst_ks[name] = max(worst_ks[name], measured["ks_stat"])
    factor = config.learned_threshold_factor
    return FeatureThresholds(
        psi={name: max(config.psi_threshold, factor * worst_psi[name]) for name in features},
        ks={name: min(1.0, max(config.ks_threshold, factor * worst_ks[name])) for name in features},
        source=f"learned from {len(months)} months",
    )
