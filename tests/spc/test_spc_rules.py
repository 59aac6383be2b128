"""Western Electric rules and EWMA signals on crafted series (centre 0, sigma_hat 1: zones at 1, 2, 3)."""

from __future__ import annotations

import numpy as np

from hybridops.spc.charts import individuals_limits, limits_from
from hybridops.spc.rules import Violation, ewma_violations, western_electric

LIM = limits_from(center=0.0, sigma_hat=1.0)  # UCL 3, LCL -3


def fired(values: list[float], rule: str) -> list[tuple[int, str]]:
    return [(v.index, v.side) for v in western_electric(values, LIM) if v.rule == rule]


def test_rule1_beyond_three_sigma() -> None:
    assert fired([0, 3.5, 0, -3.2], "rule1") == [(1, "above"), (3, "below")]


def test_rule1_near_miss_on_the_limit() -> None:
    assert fired([3.0, -3.0, 2.99], "rule1") == []


def test_rule1_detail_has_values() -> None:
    (v,) = [v for v in western_electric([0, 3.5], LIM) if v.rule == "rule1"]
    assert isinstance(v, Violation)
    assert "3.5" in v.detail and "UCL 3" in v.detail


def test_rule2_two_of_three_beyond_two_sigma() -> None:
    # positions 1 and 3 beyond +2 sigma within one window of 3 -> flagged at 3, the completing point
    assert fired([0, 2.5, 0.5, 2.5], "rule2") == [(3, "above")]
    assert fired([0, -2.5, -2.1], "rule2") == [(2, "below")]


def test_rule2_near_misses() -> None:
    # 2 of 3 beyond 2 sigma but on opposite sides
    assert fired([0, 2.5, 0, -2.5], "rule2") == []
    # same side but 4 points apart (never 2 within 3 consecutive)
    assert fired([2.5, 0, 0, 2.5], "rule2") == []
    # exactly on the 2 sigma line is not beyond it
    assert fired([2.0, 2.0, 2.0], "rule2") == []


def test_rule3_four_of_five_beyond_one_sigma() -> None:
    # window 1..5 holds 1.5, 1.5, 0.5, 1.5, 1.5 -> 4 of 5 above 1 sigma, completed at 5
    assert fired([0, 1.5, 1.5, 0.5, 1.5, 1.5], "rule3") == [(5, "above")]


def test_rule3_near_misses() -> None:
    # only 3 of any 5 consecutive above 1 sigma
    assert fired([1.5, 1.5, 0.5, 1.5, 0.5, 1.5], "rule3") == []
    # 4 beyond 1 sigma, but one on the other side
    assert fired([1.5, 1.5, -1.5, 1.5], "rule3") == []


def test_rule4_eight_in_a_row() -> None:
    assert fired([0.5] * 8, "rule4") == [(7, "above")]
    assert fired([-0.5] * 9, "rule4") == [(7, "below"), (8, "below")]


def test_rule4_near_misses() -> None:
    assert fired([-0.5] + [0.5] * 7, "rule4") == []
    # a point exactly on the centre line breaks the run
    assert fired([0.5] * 4 + [0.0] + [0.5] * 4, "rule4") == []


def test_in_control_series_has_no_violations() -> None:
    assert western_electric([0.5, -0.5, 1.2, -0.3, 0.1, -1.1, 0.4, -0.2, 0.3, -0.6], LIM) == []


def test_rule_selection_and_order() -> None:
    values = [0, 3.5, 3.5]
    everything = western_electric(values, LIM)
    assert [(v.index, v.rule) for v in everything] == [(1, "rule1"), (2, "rule1"), (2, "rule2")]
    assert [v.rule for v in western_electric(values, LIM, rules=["rule2"])] == ["rule2"]


def test_constant_baseline_only_rule1_against_exact_centre() -> None:
    lim = individuals_limits([5, 5, 5, 5])
    found = western_electric([5, 5, 5.0001, 4, 5] + [5.1] * 8, lim)
    assert {v.rule for v in found} == {"rule1"}
    assert [(v.index, v.side) for v in found[:2]] == [(2, "above"), (3, "below")]
    assert len(found) == 2 + 8
    assert western_electric([5.0] * 10, lim) == []
    assert ewma_violations([6.0] * 10, 5.0, 0.0, 0.2) == []


def test_ewma_violations() -> None:
    # centre 0, sigma_hat 1, lam 0.2: z = 0, 0, 0.6, 1.08, 1.464
    # limits: i=3 3*sqrt(0.2/1.8*(1-0.8^6)) = 0.8590, i=4 0.9123, i=5 0.9500
    found = ewma_violations([0, 0, 3, 3, 3], center=0, sigma_hat=1, lam=0.2)
    assert [(v.index, v.rule, v.side) for v in found] == [(3, "ewma", "above"), (4, "ewma", "above")]
    below = ewma_violations([0, 0, -3, -3, -3], center=0, sigma_hat=1, lam=0.2)
    assert [(v.index, v.side) for v in below] == [(3, "below"), (4, "below")]
    assert ewma_violations([0, 0, 0.5, -0.5], center=0, sigma_hat=1, lam=0.2) == []


def _k_of_n_by_hand(mask_above, mask_below, k: int, n: int) -> list[tuple[int, str, int]]:
    """The k-of-n pattern point by point: fire at i when i is in the side and >= k of the last n are."""
    fired = []
    for i in range(len(mask_above)):
        lo = max(0, i - n + 1)
        for side, mask in (("above", mask_above), ("below", mask_below)):
            count = int(mask[lo : i + 1].sum())
            if mask[i] and count >= k:
                fired.append((i, side, count))
    return fired


def test_k_of_n_rules_match_a_point_by_point_count_on_random_series() -> None:
    rng = np.random.default_rng(11)
    limits = limits_from(0.0, 1.0)
    for length in (1, 2, 3, 5, 8, 40, 400):
        x = rng.normal(0, 1.4, length)
        x[rng.random(length) < 0.05] = np.nan
        with np.errstate(invalid="ignore"):
            expected = {
                "rule2": _k_of_n_by_hand(x > limits.upper_2s, x < limits.lower_2s, 2, 3),
                "rule3": _k_of_n_by_hand(x > limits.upper_1s, x < limits.lower_1s, 4, 5),
            }
        for rule, fired in expected.items():
            found = [(v.index, v.side) for v in western_electric(x, limits, rules=[rule])]
            assert found == [(i, side) for i, side, _ in fired]
            counts = [v.detail for v in western_electric(x, limits, rules=[rule])]
            assert all(f"{count} of" in text for (_, _, count), text in zip(fired, counts, strict=True))
