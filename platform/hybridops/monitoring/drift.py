"""Feature and prediction drift between a reference sample (the training data) and a scored month.

Population Stability Index (PSI)
    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` over bins ``i``, where ``r_i`` and ``c_i`` are the shares of
    the reference and current samples in bin ``i`` (shares of *all* rows, nulls included).

    * Bins come from the reference only: interior edges at its quantiles ``1/bins, ..., (bins-1)/bins`` of
      the non-null values (``numpy.quantile``, linear interpolation), deduplicated, so a feature with few
      distinct values gets fewer bins. The outer bins are open-ended (``(-inf, e_1]`` and ``(e_k, +inf)``),
      so current values outside the reference range still land in a bin. Bins are right-closed.
    * Nulls form a bin of their own: a change of the missing rate is drift too.
    * Empty bins: a share of 0 makes ``ln`` undefined, so every share is floored at ``EPSILON = 1e-4``
      (not renormalised) before the sum. A bin empty in both samples then contributes exactly 0, and a bin
      that empties or appears contributes a large but finite amount.
    * Rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 (``monitoring.psi_threshold``) drifted.
    * An empty sample (no rows at all) has no distribution: PSI is ``nan`` (never flagged).

Kolmogorov-Smirnov (KS)
    ``scipy.stats.ks_2samp`` on the non-null values of both samples (two-sided): the statistic is the
    largest gap between the two empirical CDFs. With tens of thousands of flights the p-value is tiny for
    any visible difference, so the flag uses the statistic (``monitoring.ks_threshold``, default 0.1), and
    the p-value is reported only. Without non-null values on one side the result is ``(nan, nan)``.

A feature is *drifted* when ``psi > psi_threshold`` or ``ks_stat > ks_threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hybridops.settings import MonitoringSettings, Settings

EPSILON = 1e-4

FEATURE_DRIFT_COLUMNS = [
    "feature",
    "psi",
    "ks_stat",
    "ks_pvalue",
    "ref_mean",
    "cur_mean",
    "ref_null_rate",
    "cur_null_rate",
    "drifted",
]


def monitoring_settings(settings: MonitoringSettings | Settings) -> MonitoringSettings:
    """Accept either the whole ``Settings`` or its ``monitoring`` section."""
    return settings.monitoring if isinstance(settings, Settings) else settings


def _values(sample: Any) -> np.ndarray:
    """A float64 array (nulls, ``pd.NA`` and non-numeric values become NaN)."""
    series = pd.Series(sample) if not isinstance(sample, pd.Series) else sample
    if isinstance(series.dtype, pd.BooleanDtype) or series.dtype == bool:
        series = series.astype("Float64")
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()


def bin_edges(reference: Any, bins: int = 10) -> np.ndarray:
    """Interior bin edges: the reference's non-null quantiles ``1/bins .. (bins-1)/bins``, deduplicated."""
    ref = _values(reference)
    ref = ref[~np.isnan(ref)]
    if len(ref) == 0 or bins < 2:
        return np.empty(0, dtype="float64")
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares per bin: ``len(edges) + 1`` value bins (right-closed, open-ended) then the null bin."""
    nulls = np.isnan(values)
    index = np.searchsorted(edges, values[~nulls], side="left")  # x <= e_1 -> 0, e_k < x -> k
    counts = np.bincount(index, minlength=len(edges) + 1).astype("float64")
    counts = np.append(counts, float(nulls.sum()))
    return counts / len(values)


def psi(reference: Any, current: Any, bins: int = 10) -> float:
    """Population Stability Index of ``current`` against ``reference`` (see the module docstring)."""
    ref = _values(reference)
    cur = _values(current)
    if len(ref) == 0 or len(cur) == 0:
        return math.nan
    edges = bin_edges(ref, bins)
    r = np.maximum(_shares(ref, edges), EPSILON)
    c = np.maximum(_shares(cur, edges), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def ks(reference: Any, current: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov ``(statistic, pvalue)`` on the non-null values."""
    ref = _values(reference)
    cur = _values(current)
    ref = ref[~np.isnan(ref)]
    cur = cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return math.nan, math.nan
    result = stats.ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def _mean(values: np.ndarray) -> float:
    known = values[~np.isnan(values)]
    return float(known.mean()) if len(known) else math.nan


def _null_rate(values: np.ndarray) -> float:
    return float(np.isnan(values).mean()) if len(values) else math.nan


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    settings: MonitoringSettings | Settings,
) -> pd.DataFrame:
    """PSI, KS, means and null rates of each feature, and whether it drifted (one row per feature)."""
    config = monitoring_settings(settings)
    missing = [name for name in features if name not in reference.columns or name not in current.columns]
    if missing:
        raise ValueError(f"features missing from the reference or current frame: {missing}")
    rows = []
    for name in features:
        ref = _values(reference[name])
        cur = _values(current[name])
        value = psi(ref, cur, bins=config.bins)
        statistic, pvalue = ks(ref, cur)
        rows.append(
            {
                "feature": name,
                "psi": value,
                "ks_stat": statistic,
                "ks_pvalue": pvalue,
                "ref_mean": _mean(ref),
                "cur_mean": _mean(cur),
                "ref_null_rate": _null_rate(ref),
                "cur_null_rate": _null_rate(cur),
                # nan compares False: an empty side is never flagged
                "drifted": bool(value > config.psi_threshold or statistic > config.ks_threshold),
            }
        )
    frame = pd.DataFrame(rows, columns=FEATURE_DRIFT_COLUMNS)
    return frame.astype({"feature": "object", "drifted": "bool"}).astype(
        {c: "float64" for c in FEATURE_DRIFT_COLUMNS if c not in ("feature", "drifted")}
    )


def prediction_drift(
    reference_scores: Any, current_scores: Any, settings: MonitoringSettings | Settings
) -> dict[str, Any]:
    """Drift of the score distribution: PSI, KS and the shift of the mean probability."""
    config = monitoring_settings(settings)
    ref = _values(reference_scores)
    cur = _values(current_scores)
    value = psi(ref, cur, bins=config.bins)
    statistic, pvalue = ks(ref, cur)
    ref_mean, cur_mean = _mean(ref), _mean(cur)
    return {
        "psi": value,
        "ks_stat": statistic,
        "ks_pvalue": pvalue,
        "ref_mean": ref_mean,
        "cur_mean": cur_mean,
        "mean_shift": cur_mean - ref_mean,
        "drifted": bool(value > config.psi_threshold or statistic > config.ks_threshold),
    }
