"""Control-chart arithmetic: the Shewhart individuals (X/mR) chart and the EWMA chart.

Individuals chart: the centre is the baseline mean and the process standard deviation is estimated from
the average moving range, sigma_hat = MR_bar / d2 with d2 = 1.128 (the bias constant for ranges of two
consecutive points). Limits sit at centre +/- sigma * sigma_hat; the 1 sigma and 2 sigma zone boundaries
feed the Western Electric rules.

EWMA chart: z_0 = centre, z_i = lam * x_i + (1 - lam) * z_(i-1) for i = 1..n, with the exact time-varying
limits centre +/- L * sigma_hat * sqrt(lam / (2 - lam) * (1 - (1 - lam)^(2i))), which widen towards the
asymptote L * sigma_hat * sqrt(lam / (2 - lam)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

D2 = 1.128  # E[range] / sigma for subgroups of two consecutive points

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Limits:
    """Centre line, sigma_hat and limits of an individuals chart (all in the metric's unit)."""

    center: float
    sigma_hat: float
    ucl: float
    lcl: float
    upper_1s: float
    lower_1s: float
    upper_2s: float
    lower_2s: float
    sigma: float = 3.0  # the width of ucl/lcl in sigma_hat
    n: int = 0  # baseline points the limits were computed from

    @property
    def constant(self) -> bool:
        """The baseline never varied (sigma_hat = 0): zones collapse onto the centre line."""
        return self.sigma_hat == 0.0


def _clean(values: Sequence[float] | npt.ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[~np.isnan(arr)]


def limits_from(center: float, sigma_hat: float, sigma: float = 3.0, n: int = 0) -> Limits:
    """Limits for a known centre and sigma_hat."""
    if sigma_hat < 0 or not math.isfinite(sigma_hat):
        raise ValueError(f"sigma_hat must be finite and >= 0, got {sigma_hat}")
    return Limits(
        center=center,
        sigma_hat=sigma_hat,
        ucl=center + sigma * sigma_hat,
        lcl=center - sigma * sigma_hat,
        upper_1s=center + sigma_hat,
        lower_1s=center - sigma_hat,
        upper_2s=center + 2 * sigma_hat,
        lower_2s=center - 2 * sigma_hat,
        sigma=sigma,
        n=n,
    )


def individuals_limits(baseline: Sequence[float] | npt.ArrayLike, sigma: float = 3.0) -> Limits:
    """Individuals-chart limits from baseline points in time order (NaNs are dropped).

    centre = mean(x); MR_i = |x_i - x_(i-1)|; sigma_hat = mean(MR) / 1.128;
    UCL/LCL = centre +/- sigma * sigma_hat.
    Needs at least two points (one moving range).
    """
    x = _clean(baseline)
    if len(x) < 2:
        raise ValueError(f"an individuals chart needs at least 2 baseline points, got {len(x)}")
    center = float(x.mean())
    mr_bar = float(np.abs(np.diff(x)).mean())
    return limits_from(center, mr_bar / D2, sigma=sigma, n=len(x))


def ewma_chart(
    values: Sequence[float] | npt.ArrayLike,
    center: float,
    sigma_hat: float,
    lam: float,
    L: float = 3.0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """EWMA statistic and its exact limits for each point: ``(ewma, ucl, lcl)``.

    A NaN value carries the previous EWMA forward (the limits still advance with the index).
    """
    if not 0 < lam <= 1:
        raise ValueError(f"lam must be in (0, 1], got {lam}")
    x = np.asarray(values, dtype=float).ravel()
    z = np.empty_like(x)
    prev = center
    for i, xi in enumerate(x):
        if not math.isnan(xi):
            prev = lam * xi + (1 - lam) * prev
        z[i] = prev
    steps = np.arange(1, len(x) + 1, dtype=float)
    half_width = L * sigma_hat * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * steps)))
    return z, center + half_width, center - half_width


@dataclass(frozen=True)
class PointLimits:
    """A chart fitted to a metric's history: centre, sigma and limits for every point.

    ``sigma`` is each point's own standard deviation (a p-chart's depends on the day's denominator, a
    weekday-adjusted count's centre on the day of the week); ``ucl``/``lcl`` are ``center +/- width *
    sigma`` clipped to where the metric can go (``[0, 1]`` for a rate, ``>= 0`` for a count). The rules run
    on the standardised values ``(x - center) / sigma``, so a clipped limit is never crossed on the side the
    metric cannot reach. ``constant`` means the baseline never varied (sigma 0 everywhere).
    """

    kind: str  # "individuals", "p" or "weekday"
    center: FloatArray
    sigma: FloatArray
    ucl: FloatArray
    lcl: FloatArray
    width: float
    summary: Limits  # the baseline's centre and a typical sigma, for metadata and notes
    dispersion: float = 1.0  # a p-chart's Laney sigma_z: how much wider than binomial its limits are

    @property
    def constant(self) -> bool:
        return bool(np.all(self.sigma == 0.0))

    def standardise(self, values: npt.ArrayLike) -> FloatArray:
        """``(x - center) / sigma`` per point (NaN where sigma is 0)."""
        x = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                self.sigma > 0, (x - self.center) / np.where(self.sigma > 0, self.sigma, 1.0), np.nan
            )


def _clip(
    center: FloatArray, sigma: FloatArray, width: float, bounds: tuple[float | None, float | None]
) -> tuple[FloatArray, FloatArray]:
    low, high = bounds
    ucl, lcl = center + width * sigma, center - width * sigma
    if low is not None:
        lcl, ucl = np.maximum(lcl, low), np.maximum(ucl, low)
    if high is not None:
        lcl, ucl = np.minimum(lcl, high), np.minimum(ucl, high)
    return ucl, lcl


def individuals_chart(
    values: npt.ArrayLike,
    baseline: npt.ArrayLike,
    width: float = 3.0,
    bounds: tuple[float | None, float | None] = (None, None),
) -> PointLimits:
    """The X/mR chart of ``values`` with the limits of ``baseline`` (time order), clipped to ``bounds``."""
    lim = individuals_limits(np.asarray(baseline, dtype=float), sigma=width)
    n = len(np.asarray(values))
    center, sigma = np.full(n, lim.center), np.full(n, lim.sigma_hat)
    ucl, lcl = _clip(center, sigma, width, bounds)
    return PointLimits("individuals", center, sigma, ucl, lcl, width, lim)


def p_chart(
    rates: npt.ArrayLike,
    denominators: npt.ArrayLike,
    base_rates: npt.ArrayLike,
    base_denominators: npt.ArrayLike,
    width: float = 3.0,
    laney: bool = True,
) -> PointLimits:
    """A p-chart: centre p_bar = sum(x) / sum(n) over the baseline, sigma_i = sqrt(p_bar (1 - p_bar) / n_i)
    from each day's own denominator, limits clipped to [0, 1].

    With ``laney`` (Laney's p'-chart) sigma_i is multiplied by sigma_z, the moving-range sigma of the
    baseline's binomial z-scores, when that is above 1: daily airline rates vary far more than a binomial
    draw of independent flights (weather hits every flight of a day at once), and pure binomial limits
    then flag most days. sigma_z is floored at 1, so the limits are never narrower than binomial.
    """
    p = np.asarray(rates, dtype=float)
    n = np.asarray(denominators, dtype=float)
    bp = np.asarray(base_rates, dtype=float)
    bn = np.asarray(base_denominators, dtype=float)
    keep = ~np.isnan(bp) & (bn > 0)
    bp, bn = bp[keep], bn[keep]
    if len(bp) < 2:
        raise ValueError(f"a p-chart needs at least 2 baseline days with a denominator, got {len(bp)}")
    p_bar = float((bp * bn).sum() / bn.sum())
    spread = p_bar * (1.0 - p_bar)
    dispersion = 1.0
    if laney and spread > 0:
        z = (bp - p_bar) / np.sqrt(spread / bn)
        dispersion = max(1.0, float(np.abs(np.diff(z)).mean()) / D2)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(n > 0, dispersion * np.sqrt(spread / np.where(n > 0, n, 1.0)), 0.0)
    center = np.full(len(p), p_bar)
    ucl, lcl = _clip(center, sigma, width, (0.0, 1.0))
    typical = dispersion * math.sqrt(spread / float(np.median(bn)))
    summary = limits_from(p_bar, typical, sigma=width, n=len(bp))
    return PointLimits("p", center, sigma, ucl, lcl, width, summary, dispersion)


def weekday_chart(
    weekdays: npt.ArrayLike,
    baseline: npt.ArrayLike,
    base_weekdays: npt.ArrayLike,
    width: float = 3.0,
) -> PointLimits:
    """A count adjusted for the day of the week (Laney's u'-chart with a centre per weekday).

    Each day's centre c_i is the baseline's mean of its weekday (the baseline's overall mean for a weekday
    it lacks); sigma_i = sigma_z * sqrt(c_i), the c-chart's Poisson sigma widened by sigma_z, the moving
    range sigma of the baseline's z-scores (x - c) / sqrt(c) when that is above 1 (never narrower than
    Poisson); limits are clipped at 0.

    The schedule of an airport is weekly (a quarter fewer flights on Saturdays): one centre for all days
    puts every Saturday near the lower limit. And it is so regular within a month (a weekday's count moves
    by a few flights) that limits from its own scatter would flag every timetable change between months;
    the Poisson floor keeps those (+/- 5 %) inside and still puts a lost half of a day's flights far out.
    """
    wd = np.asarray(weekdays, dtype=int)
    bx = np.asarray(baseline, dtype=float)
    bwd = np.asarray(base_weekdays, dtype=int)
    keep = ~np.isnan(bx)
    bx, bwd = bx[keep], bwd[keep]
    if len(bx) < 2:
        raise ValueError(f"a weekday-adjusted chart needs at least 2 baseline points, got {len(bx)}")
    overall = float(bx.mean())
    means = np.array([float(bx[bwd == d].mean()) if (bwd == d).any() else overall for d in range(7)])
    base_center = means[bwd]
    dispersion = 1.0
    if np.all(base_center > 0):
        z = (bx - base_center) / np.sqrt(base_center)
        dispersion = max(1.0, float(np.abs(np.diff(z)).mean()) / D2)
    center = means[wd]
    sigma = dispersion * np.sqrt(np.maximum(center, 0.0))  # one per charted day (``weekdays``)
    ucl, lcl = _clip(center, sigma, width, (0.0, None))
    summary = limits_from(overall, dispersion * math.sqrt(max(overall, 0.0)), width, len(bx))
    return PointLimits("weekday", center, sigma, ucl, lcl, width, summary, dispersion)
