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

    Samples above ``_KS_EXACT_MAX_N`` take a vectorized copy of ``ks_2samp``'s asymptotic path (its
    statistic and ``scipy.stats.kstwo.sf`` on the effective size, public functions, with the size at which
    scipy switches paths taken from its source). The first such comparison in a process first checks the
    copy against ``ks_2samp`` itself on a fixed pair of samples and raises :class:`DriftCheckError` when
    they differ (listed in ``docs/internals.md``).

A feature is *drifted* when ``psi`` or ``ks_stat`` is above the feature's threshold: by default learnt
from the training window's month-to-month variation (``hybridops.monitoring.thresholds``), else the fixed
``monitoring.psi_threshold`` / ``ks_threshold``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from hybridops.errors import HybridopsError
from hybridops.settings import MonitoringSettings, Settings, monitoring_settings

if TYPE_CHECKING:
    from hybridops.monitoring.thresholds import FeatureThresholds

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
    "psi_threshold",
    "ks_threshold",
    "drifted",
]


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


def _ks_pvalues(statistics: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """scipy's asymptotic two-sided p-values (``kstwo.sf`` on the rounded effective size), in one call.

    The same computation ``ks_2samp`` does for samples above ``_KS_EXACT_MAX_N``; one vectorized call for a
    month's features instead of one distribution call per feature.
    """
    m, n = np.maximum(n1, n2).astype("float64"), np.minimum(n1, n2).astype("float64")
    return np.clip(stats.kstwo.sf(statistics, np.round(m * n / (m + n))), 0, 1)


def _ks_statistic(ref: np.ndarray, ref_cdf: np.ndarray, cur: np.ndarray) -> float:
    """The KS statistic of two sorted samples without nulls, ``ref_cdf`` being ref's own right-CDF.

    The largest CDF gap is reached at a point of one of the samples, so both CDFs are evaluated at the
    reference's points and at the current's (``ks_2samp`` evaluates them at the concatenation: the same
    points, the same gaps). ``ref_cdf`` is prepared once per reference.
    """
    n1, n2 = len(ref), len(cur)
    at_ref = ref_cdf - np.searchsorted(cur, ref, side="right") / n2
    at_cur = np.searchsorted(ref, cur, side="right") / n1 - np.searchsorted(cur, cur, side="right") / n2
    low = max(-at_ref.min(), -at_cur.min())
    low = float(np.clip(low, 0, 1))
    high = float(max(at_ref.max(), at_cur.max()))
    return low if low > high else high


class DriftCheckError(HybridopsError):
    """The vectorized KS path disagrees with ``scipy.stats.ks_2samp`` on the known-answer samples."""


@functools.cache
def check_ks_against_scipy() -> tuple[float, float]:
    """The vectorized KS path equals ``scipy.stats.ks_2samp`` on two fixed samples above the exact-path
    size (with ties and a shifted mean); returns scipy's (statistic, p-value). Run once per process."""
    rng = np.random.default_rng(20130101)
    ref = np.sort(np.round(rng.normal(0.0, 1.0, _KS_EXACT_MAX_N + 2_000), 1))
    cur = np.sort(np.round(rng.normal(0.05, 1.1, _KS_EXACT_MAX_N + 1), 1))
    expected = stats.ks_2samp(ref, cur)
    cdf = np.searchsorted(ref, ref, side="right") / len(ref)
    statistic = _ks_statistic(ref, cdf, cur)
    pvalue = float(_ks_pvalues(np.array([statistic]), np.array([len(ref)]), np.array([len(cur)]))[0])
    if not (
        math.isclose(statistic, float(expected.statistic), rel_tol=1e-12, abs_tol=1e-15)
        and math.isclose(pvalue, float(expected.pvalue), rel_tol=1e-9, abs_tol=1e-300)
    ):
        raise DriftCheckError(
            f"hybridops.monitoring.drift's KS path gives ({statistic!r}, {pvalue!r}) where "
            f"scipy.stats.ks_2samp gives ({float(expected.statistic)!r}, {float(expected.pvalue)!r}) on the "
            f"known-answer samples (scipy {scipy_version()}); install the scipy version hybridops pins "
            "(docs/internals.md)."
        )
    return float(expected.statistic), float(expected.pvalue)


def scipy_version() -> str:
    import scipy

    return str(scipy.__version__)


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
    known_cdf: np.ndarray  # right-continuous empirical CDF at each sorted value
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
            known_sorted = np.sort(known)
            self._prepared[name] = _Reference(
                edges=edges,
                shares=np.maximum(_shares(values, edges), EPSILON) if len(values) else np.empty(0),
                known_sorted=known_sorted,
                known_cdf=np.searchsorted(known_sorted, known_sorted, side="right") / max(len(known), 1),
                mean=_mean(values),
                null_rate=_null_rate(values),
            )

    def compare(self, name: str, current: Any) -> dict[str, float]:
        """PSI, KS and the means and null rates of ``current`` against the feature's reference."""
        return self.compare_all(pd.DataFrame({name: current}), [name])[0]

    def compare_all(self, current: pd.DataFrame, names: Sequence[str]) -> list[dict[str, float]]:
        """``compare`` for each feature of ``names``, with the KS p-values of large samples in one call."""
        rows: list[dict[str, float]] = []
        asymptotic: list[tuple[int, float, int, int]] = []  # (row, statistic, n1, n2)
        for name in names:
            ref = self._prepared[name]
            cur = _values(current[name])
            known = np.sort(cur[~np.isnan(cur)])
            if len(ref.shares) == 0 or len(cur) == 0:
                value = math.nan
            else:
                c = np.maximum(_shares(cur, ref.edges), EPSILON)
                value = float(np.sum((c - ref.shares) * np.log(c / ref.shares)))
            n1, n2 = len(ref.known_sorted), len(known)
            statistic, pvalue = math.nan, math.nan
            if n1 and n2 and max(n1, n2) <= _KS_EXACT_MAX_N:
                result = stats.ks_2samp(ref.known_sorted, known)  # scipy's exact path
                statistic, pvalue = float(result.statistic), float(result.pvalue)
            elif n1 and n2:
                statistic = _ks_statistic(ref.known_sorted, ref.known_cdf, known)
                asymptotic.append((len(rows), statistic, n1, n2))
            rows.append(
                {
                    "psi": value,
                    "ks_stat": statistic,
                    "ks_pvalue": pvalue,
                    "ref_mean": ref.mean,
                    "cur_mean": _mean(cur),
                    "ref_null_rate": ref.null_rate,
                    "cur_null_rate": _null_rate(cur),
                }
            )
        if asymptotic:
            check_ks_against_scipy()
            index, statistics, n1s, n2s = (np.array(column) for column in zip(*asymptotic, strict=True))
            for row, pvalue in zip(index, _ks_pvalues(statistics, n1s, n2s), strict=True):
                rows[int(row)]["ks_pvalue"] = float(pvalue)
        return rows


def feature_drift(
    reference: pd.DataFrame | DriftReference,
    current: pd.DataFrame,
    features: Sequence[str],
    settings: MonitoringSettings | Settings,
    thresholds: FeatureThresholds | None = None,
) -> pd.DataFrame:
    """PSI, KS, means and null rates of each feature, its thresholds and whether it drifted (one row each).

    ``reference`` is the reference frame or, to compare several months against the same one, a
    ``DriftReference`` built from it once (the results are the same). ``thresholds`` are the features'
    own (``hybridops.monitoring.thresholds``); without them the fixed settings apply.
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
    for name, measured in zip(features, reference.compare_all(current, features), strict=True):
        value, statistic = measured["psi"], measured["ks_stat"]
        psi_limit = thresholds.psi.get(name, config.psi_threshold) if thresholds else config.psi_threshold
        ks_limit = thresholds.ks.get(name, config.ks_threshold) if thresholds else config.ks_threshold
        rows.append(
            {
                "feature": name,
                **measured,
                "psi_threshold": psi_limit,
                "ks_threshold": ks_limit,
                # nan compares False: an empty side is never flagged
                "drifted": bool(value > psi_limit or statistic > ks_limit),
            }
        )
    frame = pd.DataFrame(rows, columns=FEATURE_DRIFT_COLUMNS)
    return frame.astype({"feature": "object", "drifted": "bool"}).astype(
        {c: "float64" for c in FEATURE_DRIFT_COLUMNS if c not in ("feature", "drifted")}
    )


def prediction_drift(
    reference_scores: Any, current_scores: Any, settings: MonitoringSettings | Settings
) -> dict[str, Any]:
    """Drift of the score distribution: PSI, KS and the shift of the mean probability; drifted when the
    PSI is above ``monitoring.prediction_psi_threshold`` (the threshold of the prediction drift alert)."""
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
        "threshold": config.prediction_psi_threshold,
        "drifted": bool(value > config.prediction_psi_threshold),
    }
