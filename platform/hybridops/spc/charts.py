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


def individuals_limits(baseline: Sequence[float], sigma: float = 3.0) -> Limits:
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
