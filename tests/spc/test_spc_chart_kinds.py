"""p-charts with the day's denominator, the weekday-adjusted count, clipped limits: against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybridops.spc.charts import individuals_chart, p_chart, weekday_chart


def test_binomial_p_chart_limits_come_from_each_days_denominator() -> None:
    # baseline: 20 of 1000 and 30 of 1000 cancelled -> p_bar = 50 / 2000 = 0.025
    chart = p_chart([0.02, 0.05], [900, 100], [0.02, 0.03], [1000, 1000], width=3.0, laney=False)
    p_bar = 0.025
    assert chart.kind == "p" and chart.center.tolist() == pytest.approx([p_bar, p_bar])
    sigma = [math.sqrt(p_bar * (1 - p_bar) / n) for n in (900, 100)]
    assert chart.sigma.tolist() == pytest.approx(sigma)
    assert chart.ucl.tolist() == pytest.approx([p_bar + 3 * s for s in sigma])
    # the lower limit of the small day (p_bar - 3 * 0.0156 < 0) is clipped at 0: a rate cannot go below
    assert chart.lcl[0] == pytest.approx(p_bar - 3 * sigma[0]) and chart.lcl[0] > 0
    assert chart.lcl[1] == 0.0
    # a small day's limits are wider than a big day's
    assert chart.ucl[1] > chart.ucl[0]
    z = chart.standardise([0.02, 0.05])
    assert z.tolist() == pytest.approx([(0.02 - p_bar) / sigma[0], (0.05 - p_bar) / sigma[1]])


def test_p_chart_upper_limit_is_clipped_at_one() -> None:
    chart = p_chart([0.5], [4], [0.4, 0.6], [5, 5], width=3.0, laney=False)
    assert chart.ucl[0] == 1.0 and chart.lcl[0] == 0.0


def test_laney_widens_an_overdispersed_p_chart_and_never_narrows_it() -> None:
    # day-to-day rates far more spread than binomial for n = 1000 (sigma 0.0044): 0.01, 0.05, 0.01, 0.05
    rates, n = [0.01, 0.05, 0.01, 0.05], [1000] * 4
    binomial = p_chart([0.03], [1000], rates, n, laney=False)
    laney = p_chart([0.03], [1000], rates, n, laney=True)
    p_bar = 0.03
    s = math.sqrt(p_bar * (1 - p_bar) / 1000)
    sigma_z = (0.04 / s) / 1.128  # every moving range of the z-scores is 0.04 / s
    assert laney.dispersion == pytest.approx(sigma_z)
    assert laney.sigma[0] == pytest.approx(sigma_z * s) and laney.sigma[0] > binomial.sigma[0]
    # binomial-looking baseline (z moving ranges below 1.128): sigma_z floored at 1, the binomial limits
    calm = p_chart([0.03], [1000], [0.030, 0.031, 0.030], [1000] * 3, laney=True)
    assert calm.dispersion == 1.0


def test_a_p_chart_needs_two_baseline_days_with_flights() -> None:
    with pytest.raises(ValueError, match="at least 2 baseline days"):
        p_chart([0.1], [10], [0.1, 0.2], [10, 0])


def test_weekday_chart_centres_each_day_on_its_weekday() -> None:
    # two weeks of baseline: Mon..Fri 1000 and 1010, Sat 700 and 710, Sun 900 and 910
    weekdays = [0, 1, 2, 3, 4, 5, 6] * 2
    base = [1000.0] * 5 + [700.0, 900.0] + [1010.0] * 5 + [710.0, 910.0]
    chart = weekday_chart([5, 6, 0], base, weekdays, width=3.0)
    assert chart.kind == "weekday"
    assert chart.center.tolist() == pytest.approx([705.0, 905.0, 1005.0])
    # the count is so regular that sigma_z is below 1: Poisson limits, c +/- 3 sqrt(c)
    assert chart.dispersion == 1.0
    assert chart.sigma.tolist() == pytest.approx([math.sqrt(705), math.sqrt(905), math.sqrt(1005)])
    # a Saturday at its usual 700 is in control, a Saturday at half of it is far out
    z = chart.standardise([700.0, 905.0, 1005.0])
    assert abs(z[0]) < 1
    assert chart.standardise([352.0, 905.0, 1005.0])[0] < -3
    # a weekday missing from the baseline is centred on the baseline's overall mean
    partial = weekday_chart([2], [1000.0, 1000.0, 700.0], [0, 1, 5], width=3.0)
    assert partial.center[0] == pytest.approx(900.0)


def test_count_limits_are_clipped_at_zero() -> None:
    chart = weekday_chart([0, 1], [2.0, 1.0, 3.0, 0.0], [0, 1, 0, 1], width=3.0)
    assert (chart.lcl == 0.0).all() and (chart.ucl > 0).all()
    individuals = individuals_chart([0.0, 1.0], [0.0, 4.0, 0.0, 4.0], width=3.0, bounds=(0.0, None))
    assert individuals.lcl.tolist() == [0.0, 0.0]
    assert individuals.ucl[0] == pytest.approx(2.0 + 3 * 4 / 1.128)


def test_constant_baseline_is_flagged_as_constant() -> None:
    chart = p_chart([0.0, 0.01], [100, 100], [0.0, 0.0, 0.0], [100, 100, 100])
    assert chart.constant and np.isnan(chart.standardise([0.0, 0.01])).all()
