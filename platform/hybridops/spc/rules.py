"""Western Electric run rules and EWMA out-of-control signals over an ordered series.

Conventions:

* Positions are 0-based indexes into the series as given (time order; gaps in time are not points).
* "Beyond k sigma" is strict (``x > centre + k * sigma_hat`` above, ``x < centre - k * sigma_hat``
  below); rule1 uses the chart's control limits (``ucl``/``lcl``, 3 sigma by default). A point beyond
  3 sigma also counts as beyond 2 sigma and 1 sigma.
* A violation is flagged at the point that completes the pattern, which is itself one of the pattern's
  points: rule2 fires at i when x_i is beyond 2 sigma and at least 2 of the last 3 points (x_(i-2)..x_i,
  fewer at the start of the series) are beyond 2 sigma on that side; rule3 likewise with 4 of the last 5
  beyond 1 sigma; rule4 when x_(i-7)..x_i are all strictly on one side of the centre. A longer run flags
  again at every point that extends it (9 in a row on one side: rule4 at the 8th and the 9th point).
* A point exactly on the centre line is on neither side; a NaN point matches no pattern.
* Constant baseline (sigma_hat = 0): the zones collapse onto the centre, so only rule1 is evaluated,
  against the exact centre: any value different from it is a violation. The EWMA chart gives no signals
  then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from hybridops.spc.charts import FloatArray, Limits, ewma_chart

Side = Literal["above", "below"]
RULES: tuple[str, ...] = ("rule1", "rule2", "rule3", "rule4")
RULE_DESCRIPTIONS: dict[str, str] = {
    "rule1": "One point beyond the 3 sigma control limits.",
    "rule2": "2 of 3 consecutive points beyond 2 sigma on the same side of the centre.",
    "rule3": "4 of 5 consecutive points beyond 1 sigma on the same side of the centre.",
    "rule4": "8 consecutive points on the same side of the centre.",
    "ewma": "The EWMA statistic beyond its control limits (a small sustained shift).",
}


@dataclass(frozen=True)
class Violation:
    """One rule firing at ``index`` (the position of the point that completes the pattern)."""

    index: int
    rule: str
    side: Side
    detail: str


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _fmt_all(xs: Iterable[float]) -> str:
    return ", ".join(_fmt(float(x)) for x in xs)


def _k_of_n(
    x: FloatArray,
    above: npt.NDArray[np.bool_],
    below: npt.NDArray[np.bool_],
    k: int,
    n: int,
    rule: str,
    describe: Callable[[Side, int, FloatArray], str],
) -> list[Violation]:
    """Fire at i when point i is in the side's mask and at least k of the last n points (fewer at the
    start of the series) are too."""
    found: list[Violation] = []
    sides: tuple[tuple[Side, npt.NDArray[np.bool_]], ...] = (("above", above), ("below", below))
    fired: list[tuple[int, Side, int]] = []
    for side, mask in sides:
        # Points of the side among the last n (fewer at the start), from running totals.
        totals = np.cumsum(mask, dtype=np.int64)
        counts = totals - np.concatenate([np.zeros(n, dtype=np.int64), totals[:-n]])[: len(totals)]
        fired += [(int(i), side, int(counts[i])) for i in np.flatnonzero(mask & (counts >= k))]
    for i, side, count in sorted(fired, key=lambda f: (f[0], f[1] == "below")):  # above before below
        lo = max(0, i - n + 1)
        found.append(Violation(i, rule, side, describe(side, count, x[lo : i + 1])))
    return found


def western_electric(
    values: Sequence[float] | npt.ArrayLike,
    limits: Limits,
    rules: Iterable[str] = RULES,
) -> list[Violation]:
    """All violations of the selected Western Electric rules, ordered by index then rule."""
    x = np.asarray(values, dtype=float).ravel()
    wanted = set(rules)
    unknown = wanted - set(RULES)
    if unknown:
        raise ValueError(f"unknown rules: {sorted(unknown)}")
    c = limits.center
    found: list[Violation] = []

    if limits.constant:
        if "rule1" in wanted:
            for i, xi in enumerate(x):
                if not np.isnan(xi) and xi != c:
                    side: Side = "above" if xi > c else "below"
                    found.append(
                        Violation(
                            i,
                            "rule1",
                            side,
                            f"value {_fmt(xi)} differs from the constant baseline {_fmt(c)} (sigma_hat = 0)",
                        )
                    )
        return found

    with np.errstate(invalid="ignore"):
        if "rule1" in wanted:
            for i, xi in enumerate(x):
                if xi > limits.ucl:
                    found.append(
                        Violation(
                            i,
                            "rule1",
                            "above",
                            f"value {_fmt(xi)} above UCL {_fmt(limits.ucl)} "
                            f"(centre {_fmt(c)}, sigma_hat {_fmt(limits.sigma_hat)})",
                        )
                    )
                elif xi < limits.lcl:
                    found.append(
                        Violation(
                            i,
                            "rule1",
                            "below",
                            f"value {_fmt(xi)} below LCL {_fmt(limits.lcl)} "
                            f"(centre {_fmt(c)}, sigma_hat {_fmt(limits.sigma_hat)})",
                        )
                    )
        if "rule2" in wanted:
            found += _k_of_n(
                x,
                x > limits.upper_2s,
                x < limits.lower_2s,
                2,
                3,
                "rule2",
                lambda side, count, w: (
                    f"{count} of {len(w)} consecutive points beyond 2 sigma {side} the centre "
                    f"(2 sigma band {_fmt(limits.lower_2s)}..{_fmt(limits.upper_2s)}): {_fmt_all(w)}"
                ),
            )
        if "rule3" in wanted:
            found += _k_of_n(
                x,
                x > limits.upper_1s,
                x < limits.lower_1s,
                4,
                5,
                "rule3",
                lambda side, count, w: (
                    f"{count} of {len(w)} consecutive points beyond 1 sigma {side} the centre "
                    f"(1 sigma band {_fmt(limits.lower_1s)}..{_fmt(limits.upper_1s)}): {_fmt_all(w)}"
                ),
            )
        if "rule4" in wanted:
            found += _k_of_n(
                x,
                x > c,
                x < c,
                8,
                8,
                "rule4",
                lambda side, count, w: f"8 consecutive points {side} the centre {_fmt(c)}: {_fmt_all(w)}",
            )
    order = {r: n for n, r in enumerate(RULES)}
    return sorted(found, key=lambda v: (v.index, order[v.rule]))


def ewma_violations(
    values: Sequence[float] | npt.ArrayLike,
    center: float,
    sigma_hat: float,
    lam: float,
    L: float = 3.0,
) -> list[Violation]:
    """Points whose EWMA statistic lies strictly outside its exact limits (rule ``"ewma"``).

    None when sigma_hat = 0 (see the module docstring).
    """
    if sigma_hat == 0:
        return []
    z, ucl, lcl = ewma_chart(values, center, sigma_hat, lam, L)
    x = np.asarray(values, dtype=float).ravel()
    found: list[Violation] = []
    for i in range(len(z)):
        if np.isnan(x[i]):
            continue
        if z[i] > ucl[i]:
            found.append(
                Violation(
                    i,
                    "ewma",
                    "above",
                    f"EWMA {_fmt(z[i])} above its UCL {_fmt(ucl[i])} (value {_fmt(x[i])}, λ {_fmt(lam)})",
                )
            )
        elif z[i] < lcl[i]:
            found.append(
                Violation(
                    i,
                    "ewma",
                    "below",
                    f"EWMA {_fmt(z[i])} below its LCL {_fmt(lcl[i])} (value {_fmt(x[i])}, λ {_fmt(lam)})",
                )
            )
    return found
