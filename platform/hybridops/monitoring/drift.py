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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hybridops.settings import MonitoringSettings, Settings

EPSILON = 1e-4
_KS_EXACT_MAX_N = 10_000  # scipy.stats.ks_2samp computes exact p-values up to this size

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


def _ks_sorted(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """``ks`` on samples already sorted and without nulls: ``scipy.stats.ks_2samp``'s own computation
    (same statistic, same p-value), without sorting the reference again for every month. Samples larger
    than ``_KS_EXACT_MAX_N`` take scipy's asymptotic path, as ``ks_2samp`` does; smaller ones go to scipy.
    """
    n1, n2 = len(ref), len(cur)
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan
    if max(n1, n2) <= _KS_EXACT_MAX_N:
        result = stats.ks_2samp(ref, cur)
        return float(result.statistic), float(result.pvalue)
    both = np.concatenate([ref, cur])
    gaps = np.searchsorted(ref, both, side="right") / n1 - np.searchsorted(cur, both, side="right") / n2
    low = np.clip(-gaps[np.argmin(gaps)], 0, 1)
    high = gaps[np.argmax(gaps)]
    statistic = low if low > high else high
    m, n = sorted([float(n1), float(n2)], reverse=True)
    pvalue = np.clip(stats.kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1)
    return float(statistic), float(pvalue)


def _mean(values: np.ndarray) -> float:
    known = values[~np.isnan(values)]
    return float(known.mean()) if len(known) else math.nan


def _null_rate(values: np.ndarray) -> float:
    return float(np.isnan(values).mean()) if len(values) else math.nan


@dataclass(frozen=True)
class _Reference:
    """One feature's reference sample, prepared once for every month compared against it."""

    edges: np.ndarray
    shares: np.ndarray  # floored at EPSILON
    known_sorted: np.ndarray
    mean: float
    null_rate: float


class DriftReference:
    """The reference frame's features prepared once (bins, shares, sorted values, means): comparing
    several months against it gives the same numbers as ``feature_drift`` on the frame itself."""

    def __init__(self, reference: pd.DataFrame, features: Sequence[str], bins: int) -> None:
        missing = [name for name in features if name not in reference.columns]
        if missing:
            raise ValueError(f"features missing from the reference frame: {missing}")
        self.bins = bins
        self.features = list(features)
        self._prepared: dict[str, _Reference] = {}
        for name in features:
            values = _values(reference[name])
            known = values[~np.isnan(values)]
            edges = bin_edges(known, bins)
            self._prepared[name] = _Reference(
                edges=edges,
                shares=np.maximum(_shares(values, edges), EPSILON) if len(values) else np.empty(0),
                known_sorted=np.sort(known),
                mean=_mean(values),
                null_rate=_null_rate(values),
            )

    def compare(self, name: str, current: Any) -> dict[str, float]:
        """PSI, KS and the means and null rates of ``current`` against the feature's reference."""
        ref = self._prepared[name]
        cur = _values(current)
        known = cur[~np.isnan(cur)]
        if len(ref.shares) == 0 or len(cur) == 0:
            value = math.nan
        else:
            c = np.maximum(_shares(cur, ref.edges), EPSILON)
            value = float(np.sum((c - ref.shares) * np.log(c / ref.shares)))
        statistic, pvalue = _ks_sorted(ref.known_sorted, np.sort(known))
        return {
            "psi": value,
            "ks_stat": statistic,
            "ks_pvalue": pvalue,
            "ref_mean": ref.mean,
            "cur_mean": _mean(cur),
            "ref_null_rate": ref.null_rate,
            "cur_null_rate": _null_rate(cur),
        }


def feature_drift(
    reference: pd.DataFrame | DriftReference,
    current: pd.DataFrame,
    features: Sequence[str],
    settings: MonitoringSettings | Settings,
) -> pd.DataFrame:
    """PSI, KS, means and null rates of each feature, and whether it drifted (one row per feature).

    ``reference`` is the reference frame or, to compare several months against the same one, a
    ``DriftReference`` built from it once (the results are the same).
    """
    config = monitoring_settings(settings)
    known = reference.features if isinstance(reference, DriftReference) else reference.columns
    missing = [name for name in features if name not in known or name not in current.columns]
    if missing:
        raise ValueError(f"features missing from the reference or current frame: {missing}")
    if not isinstance(reference, DriftReference) or reference.bins != config.bins:
        frame = reference if isinstance(reference, pd.DataFrame) else None
        if frame is None:
            raise ValueError(f"the reference was prepared with {reference.bins} bins, not {config.bins}")
        reference = DriftReference(frame, features, config.bins)
    rows = []
    for name in features:
        measured = reference.compare(name, current[name])
        value, statistic = measured["psi"], measured["ks_stat"]
        rows.append(
            {
                "feature": name,
                **measured,
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
