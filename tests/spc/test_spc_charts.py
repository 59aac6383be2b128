"""Individuals-chart limits and EWMA limits against hand computations."""

from __future__ import annotations

import itertools
import math

import pytest

from hybridops.spc.charts import D2, ewma_chart, individuals_limits, limits_from


def test_individuals_limits_by_hand() -> None:
    # baseline 10, 12, 11, 14, 13
    # mean = 60 / 5 = 12
    # moving ranges |12-10|, |11-12|, |14-11|, |13-14| = 2, 1, 3, 1  ->  MR_bar = 7 / 4 = 1.75
    # sigma_hat = 1.75 / 1.128 = 1.5514184...
    # UCL = 12 + 3 * 1.5514184 = 16.6542553;  LCL = 12 - 4.6542553 = 7.3457447
    # 1 sigma zone 10.4485816 .. 13.5514184;  2 sigma zone 8.8971631 .. 15.1028369
    lim = individuals_limits([10, 12, 11, 14, 13])
    assert lim.center == pytest.approx(12.0)
    assert lim.sigma_hat == pytest.approx(1.75 / 1.128)
    assert lim.sigma_hat == pytest.approx(1.5514184, abs=1e-7)
    assert lim.ucl == pytest.approx(16.6542553, abs=1e-7)
    assert lim.lcl == pytest.approx(7.3457447, abs=1e-7)
    assert lim.upper_1s == pytest.approx(13.5514184, abs=1e-7)
    assert lim.lower_1s == pytest.approx(10.4485816, abs=1e-7)
    assert lim.upper_2s == pytest.approx(15.1028369, abs=1e-7)
    assert lim.lower_2s == pytest.approx(8.8971631, abs=1e-7)
    assert lim.n == 5
    assert not lim.constant


def test_individuals_limits_custom_width_and_nan_dropped() -> None:
    # same baseline with a NaN in it: NaN is dropped, so MR_bar is still 1.75
    lim = individuals_limits([10, 12, float("nan"), 11, 14, 13], sigma=2.0)
    assert lim.ucl == pytest.approx(12 + 2 * 1.75 / D2)
    assert lim.lcl == pytest.approx(12 - 2 * 1.75 / D2)
    # zones stay at 1 and 2 sigma whatever the limit width
    assert lim.upper_2s == pytest.approx(12 + 2 * 1.75 / D2)
    assert lim.sigma == 2.0


def test_constant_baseline_has_zero_sigma() -> None:
    lim = individuals_limits([5, 5, 5, 5])
    assert lim.constant
    assert lim.ucl == lim.lcl == lim.center == 5.0


def test_individuals_limits_needs_two_points() -> None:
    with pytest.raises(ValueError):
        individuals_limits([1.0])
    with pytest.raises(ValueError):
        individuals_limits([])


def test_frozen() -> None:
    lim = limits_from(0.0, 1.0)
    with pytest.raises(AttributeError):
        lim.center = 1.0  # type: ignore[misc]


def test_ewma_by_hand() -> None:
    # centre 10, sigma_hat 2, lam 0.2, L 3; values 12, 8
    # z1 = 0.2*12 + 0.8*10 = 10.4;  z2 = 0.2*8 + 0.8*10.4 = 9.92
    # i=1: lam/(2-lam) * (1 - 0.8^2) = (0.2/1.8) * 0.36 = 0.04 -> sqrt 0.2 -> half width 3*2*0.2 = 1.2
    # i=2: (0.2/1.8) * (1 - 0.8^4) = 0.111111 * 0.5904 = 0.0656 -> sqrt 0.2561250 -> half 1.5367500
    z, ucl, lcl = ewma_chart([12, 8], center=10, sigma_hat=2, lam=0.2, L=3)
    assert z.tolist() == pytest.approx([10.4, 9.92])
    assert ucl.tolist() == pytest.approx([11.2, 10 + 6 * math.sqrt(0.0656)])
    assert ucl[1] == pytest.approx(11.53675, abs=1e-5)
    assert lcl.tolist() == pytest.approx([8.8, 10 - 6 * math.sqrt(0.0656)])


def test_ewma_limits_approach_the_asymptote() -> None:
    # asymptote: L * sigma_hat * sqrt(lam / (2 - lam)) = 3 * 2 * sqrt(0.2/1.8) = 6 / 3 = 2 -> 8 .. 12
    _, ucl, lcl = ewma_chart([10.0] * 200, center=10, sigma_hat=2, lam=0.2, L=3)
    assert ucl[-1] == pytest.approx(12.0)
    assert lcl[-1] == pytest.approx(8.0)
    assert all(a < b for a, b in itertools.pairwise(ucl) if b < 12.0 - 1e-12)


def test_ewma_lambda_one_is_the_individuals_chart() -> None:
    z, ucl, _ = ewma_chart([1.0, 2.0], center=0, sigma_hat=1, lam=1.0)
    assert z.tolist() == [1.0, 2.0]
    assert ucl.tolist() == pytest.approx([3.0, 3.0])


def test_ewma_rejects_bad_lambda() -> None:
    with pytest.raises(ValueError):
        ewma_chart([1.0], 0, 1, lam=0)
