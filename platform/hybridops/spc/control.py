"""Evaluate one month of daily data metrics on control charts.

For every metric with points in the month:

* Baseline: the metric's points whose day lies in ``[baseline_start, baseline_start + baseline_days)``,
  taken from the whole history (also from months after the evaluated one). With fewer than
  ``settings.min_baseline_points`` (8) such points the month is charted against its own points and the
  baseline is marked ``provisional`` (``SpcResult.baselines``/``notes`` and the ``baseline`` column of the
  points say so). With fewer than 2 points in that month no limits can be estimated: the points are
  kept with NaN limits, the baseline is ``insufficient`` and no rule is evaluated.
* Limits: the individuals (X/mR) chart of the baseline, centre +/- ``settings.sigma`` * sigma_hat.
* Rules: Western Electric rule1..rule4 and the EWMA chart run over the whole ordered history of the metric
  up to the end of the month (the EWMA starts at the first point of that history), so a pattern that
  begins in the previous month and completes in this one is caught; only violations whose day falls in
  the month are reported.
* Constant baseline (sigma_hat = 0, e.g. a null rate that was always 0): only rule1 applies, against the
  exact centre, so any value different from the baseline value is a violation; rule2..rule4 and the EWMA
  chart are skipped because their zones collapse onto the centre line.

History rows with a NaN value are ignored; a duplicated ``(metric, day)`` keeps its last row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hybridops.settings import SpcSettings
from hybridops.spc.charts import Limits, ewma_chart, individuals_limits
from hybridops.spc.metrics import METRIC_NAMES
from hybridops.spc.rules import Violation, ewma_violations, western_electric

POINT_COLUMNS = [
    "month_key",
    "day",
    "metric",
    "value",
    "center",
    "ucl",
    "lcl",
    "ewma",
    "ewma_ucl",
    "ewma_lcl",
    "baseline",
]
VIOLATION_COLUMNS = [
    "month_key",
    "day",
    "metric",
    "rule",
    "severity",
    "side",
    "value",
    "detail",
    "run_id",
]
# Points a multi-point rule looks back over (for the day range in the violation's detail).
_RULE_WINDOW = {"rule2": 3, "rule3": 5, "rule4": 8}

BASELINE_FULL = "full"
BASELINE_PROVISIONAL = "provisional"
BASELINE_INSUFFICIENT = "insufficient"


@dataclass
class SpcResult:
    """Control-chart evaluation of one month."""

    month_key: str
    points: pd.DataFrame  # POINT_COLUMNS, one row per metric and day of the month
    violations: pd.DataFrame  # VIOLATION_COLUMNS
    limits: dict[str, Limits]  # per metric with estimable limits
    baselines: dict[str, str] = field(default_factory=dict)  # metric -> full | provisional | insufficient
    notes: list[str] = field(default_factory=list)  # human-readable remarks (provisional baselines, ...)

    @property
    def provisional_metrics(self) -> list[str]:
        return [m for m, kind in self.baselines.items() if kind == BASELINE_PROVISIONAL]

    @property
    def error_count(self) -> int:
        return int((self.violations["severity"] == "ERROR").sum()) if not self.violations.empty else 0


def month_bounds(month_key: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First day of the month and first day of the next month (exclusive end)."""
    period = pd.Period(month_key, freq="M")
    return period.start_time.normalize(), (period + 1).start_time.normalize()


def _empty_points() -> pd.DataFrame:
    # Typed empty columns (``string``, not ``object``) so a first write creates VARCHAR columns in DuckDB.
    text = {"month_key", "metric", "baseline"}
    frame = pd.DataFrame({col: pd.Series(dtype="string" if col in text else float) for col in POINT_COLUMNS})
    frame["day"] = frame["day"].astype("datetime64[ns]")
    return frame


def _empty_violations() -> pd.DataFrame:
    frame = pd.DataFrame({col: pd.Series(dtype="string") for col in VIOLATION_COLUMNS})
    frame["day"] = frame["day"].astype("datetime64[ns]")
    frame["value"] = frame["value"].astype(float)
    return frame


def _normalise(history: pd.DataFrame) -> pd.DataFrame:
    frame = history.loc[:, ["day", "metric", "value"]].copy()
    frame["day"] = pd.to_datetime(frame["day"]).dt.normalize().astype("datetime64[ns]")
    frame["metric"] = frame["metric"].astype(str)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    frame = frame.dropna(subset=["value"])
    frame = frame.drop_duplicates(subset=["metric", "day"], keep="last")
    return frame.sort_values(["metric", "day"], kind="stable").reset_index(drop=True)


def _metric_order(names: set[str]) -> list[str]:
    known = [m for m in METRIC_NAMES if m in names]
    return known + sorted(names - set(METRIC_NAMES))


def evaluate(history: pd.DataFrame, month_key: str, settings: SpcSettings, run_id: str) -> SpcResult:
    """Chart ``month_key`` of the daily metrics in ``history`` (``spc_metrics`` rows of all months)."""
    start, end = month_bounds(month_key)
    if settings.baseline == "trailing":
        base_start, base_end = start - pd.Timedelta(days=settings.baseline_days), start
    else:
        base_start = pd.Timestamp(settings.baseline_start)
        base_end = base_start + pd.Timedelta(days=settings.baseline_days)
    hist = _normalise(history)

    point_frames: list[pd.DataFrame] = []
    violation_rows: list[dict[str, object]] = []
    limits: dict[str, Limits] = {}
    baselines: dict[str, str] = {}
    notes: list[str] = []

    for metric in _metric_order(set(hist["metric"])):
        series = hist[hist["metric"] == metric]
        upto = series[series["day"] < end].reset_index(drop=True)
        in_month = (upto["day"] >= start).to_numpy()
        if not in_month.any():
            continue
        days = upto["day"].to_numpy()
        values = upto["value"].to_numpy(dtype=float)

        window = series[(series["day"] >= base_start) & (series["day"] < base_end)]
        if len(window) >= settings.min_baseline_points:
            kind, base_values = BASELINE_FULL, window["value"].to_numpy(dtype=float)
        else:
            kind, base_values = BASELINE_PROVISIONAL, values[in_month]
        if len(base_values) < 2:
            kind = BASELINE_INSUFFICIENT
            notes.append(
                f"{metric}: only {len(window)} baseline-window point(s) and {int(in_month.sum())} point(s) "
                f"in {month_key}; no limits, no rules evaluated"
            )
        elif kind == BASELINE_PROVISIONAL:
            last_day = (base_end - pd.Timedelta(days=1)).date()
            notes.append(
                f"{metric}: provisional baseline ({len(window)} of the required "
                f"{settings.min_baseline_points} points in {base_start.date()}..{last_day}); "
                f"limits from the {len(base_values)} points of {month_key} itself"
            )
        baselines[metric] = kind

        nan = np.full(len(values), math.nan)
        center_v, ucl_v, lcl_v, z, z_ucl, z_lcl = nan, nan, nan, nan, nan, nan
        found: list[Violation] = []
        if kind != BASELINE_INSUFFICIENT:
            lim = individuals_limits(base_values, sigma=settings.sigma)
            limits[metric] = lim
            center_v = np.full(len(values), lim.center)
            ucl_v = np.full(len(values), lim.ucl)
            lcl_v = np.full(len(values), lim.lcl)
            z, z_ucl, z_lcl = ewma_chart(
                values, lim.center, lim.sigma_hat, settings.ewma_lambda, settings.ewma_width
            )
            if metric not in settings.chart_only_metrics:
                found = western_electric(values, lim) + ewma_violations(
                    values, lim.center, lim.sigma_hat, settings.ewma_lambda, settings.ewma_width
                )

        point_frames.append(
            pd.DataFrame(
                {
                    "month_key": month_key,
                    "day": days[in_month],
                    "metric": metric,
                    "value": values[in_month],
                    "center": center_v[in_month],
                    "ucl": ucl_v[in_month],
                    "lcl": lcl_v[in_month],
                    "ewma": z[in_month],
                    "ewma_ucl": z_ucl[in_month],
                    "ewma_lcl": z_lcl[in_month],
                    "baseline": kind,
                }
            )
        )
        for v in found:
            if not in_month[v.index]:
                continue
            detail = v.detail
            span = _RULE_WINDOW.get(v.rule)
            if span:
                first = pd.Timestamp(days[max(0, v.index - span + 1)]).date()
                detail += f" [points {first}..{pd.Timestamp(days[v.index]).date()}]"
            if kind == BASELINE_PROVISIONAL:
                detail += " (provisional baseline)"
            violation_rows.append(
                {
                    "month_key": month_key,
                    "day": days[v.index],
                    "metric": metric,
                    "rule": v.rule,
                    "severity": settings.rule_severity.get(v.rule, "WARN"),
                    "side": v.side,
                    "value": float(values[v.index]),
                    "detail": detail,
                    "run_id": run_id,
                }
            )

    points = pd.concat(point_frames, ignore_index=True)[POINT_COLUMNS] if point_frames else _empty_points()
    points["day"] = points["day"].astype("datetime64[ns]")
    if violation_rows:
        violations = pd.DataFrame(violation_rows, columns=VIOLATION_COLUMNS)
        violations["day"] = violations["day"].astype("datetime64[ns]")
        violations["value"] = violations["value"].astype(float)
    else:
        violations = _empty_violations()
    return SpcResult(
        month_key=month_key,
        points=points,
        violations=violations,
        limits=limits,
        baselines=baselines,
        notes=notes,
    )


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.4g}"


def control_chart_markdown(points: pd.DataFrame, metric: str, violations: pd.DataFrame | None = None) -> str:
    """A markdown table of one metric's chart: day, value, centre, LCL, UCL and a ✗ on violating days.

    With ``violations`` (the ``SpcResult.violations`` frame) a day is marked when any rule fired on it and
    the rules are listed; without it, a day is marked when its value lies outside [LCL, UCL].
    """
    rows = points[points["metric"] == metric].sort_values("day")
    fired: dict[pd.Timestamp, list[str]] = {}
    if violations is not None and not violations.empty:
        mine = violations[violations["metric"] == metric]
        for day, rule in zip(pd.to_datetime(mine["day"]), mine["rule"], strict=True):
            fired.setdefault(pd.Timestamp(day).normalize(), []).append(str(rule))
    lines = ["| day | value | centre | LCL | UCL | signal |", "|---|---:|---:|---:|---:|:---:|"]
    for row in rows.itertuples(index=False):
        day = pd.Timestamp(row.day).normalize()
        value, lcl, ucl = float(row.value), float(row.lcl), float(row.ucl)
        if violations is not None:
            rules = fired.get(day, [])
            signal = f"✗ {', '.join(sorted(set(rules)))}" if rules else ""
        else:
            signal = "✗" if (value > ucl or value < lcl) else ""
        lines.append(
            f"| {day.date()} | {_num(value)} | {_num(float(row.center))} | {_num(lcl)} | {_num(ucl)} "
            f"| {signal} |"
        )
    return "\n".join(lines)
