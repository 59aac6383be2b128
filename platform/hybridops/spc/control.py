"""Evaluate one month of daily data metrics on control charts and turn rule firings into alarms.

For every metric with points in the month:

* Baseline: the metric's points whose day lies in the baseline window (``settings.baseline``: the
  ``baseline_days`` before the month, or a fixed window from ``baseline_start``). With fewer than
  ``settings.min_baseline_points`` (8) such points the month is charted against its own points and the
  baseline is marked ``provisional`` (``SpcResult.baselines``/``notes`` and the ``baseline`` column of the
  points say so). With fewer than 2 points no limits can be estimated: the points are kept with NaN
  limits, the baseline is ``insufficient`` and no rule is evaluated.
* Chart, by the metric's kind (``MetricDef.chart``): a share of the day's flights on a p-chart (binomial
  limits from that day's ``flight_count``, Laney-widened by default), the flight count against the mean
  of its day of the week, everything else on an individuals (X/mR) chart. Limits are clipped to where the
  metric can go (rates in [0, 1], counts >= 0).
* Rules: Western Electric rule1..rule4 and the EWMA chart run on the standardised values
  ``(x - centre) / sigma`` over the whole ordered history of the metric up to the end of the month, so a
  pattern that begins in the previous month and completes in this one is caught.
* One row per run (``violations``): the firings of a rule on one side whose windows touch are one run,
  with ``start_day`` (first point of the pattern), ``day`` (the point that completed it: when it is
  raised) and ``end_day`` (the last point that extended it). A run raised in an earlier month is not
  raised again (a note says it goes on). A pattern completed early in a month may start in the last days
  of the month before, which that month charted against its own limits: those days can then be in a
  run of each month.
* One alarm per cause (``alarms``): the runs of related metrics (``settings.groups``) on overlapping days
  are one alarm listing the metrics and the evidence of each run; ``violations.alarm_id`` links them.
* Constant baseline (sigma 0, e.g. a null rate that was always 0): only rule1 applies, against the exact
  centre, so any value different from the baseline value is a violation.
* Holidays (``settings.holiday_calendar``): the points of ``settings.calendar_metrics`` on the travel
  holidays (``hybridops.spc.calendar``) are charted but not judged by the rules (a note names them),
  since airlines fly less on them by design. They stay in the baseline: a weekday's centre from four or
  five days is what the schedule gave that month, and leaving its holiday out measured worse on 2013 (the
  August Saturdays without August 31 put September's every Saturday below the limit).

History rows with a NaN value are ignored; a duplicated ``(metric, day)`` keeps its last row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hybridops.settings import SpcSettings
from hybridops.spc.alarms import ALARM_COLUMNS, Run, group_alarms, runs_of
from hybridops.spc.calendar import holiday_days
from hybridops.spc.charts import (
    FloatArray,
    Limits,
    PointLimits,
    ewma_chart,
    individuals_chart,
    limits_from,
    p_chart,
    weekday_chart,
)
from hybridops.spc.metrics import METRIC_DEFS, METRIC_NAMES, MetricDef
from hybridops.spc.rules import Violation, ewma_violations, western_electric
from hybridops.spc.tables import format_number

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
    "start_day",
    "end_day",
    "alarm_id",
]
_DAY_COLUMNS = ("day", "start_day", "end_day")

BASELINE_FULL = "full"
BASELINE_PROVISIONAL = "provisional"
BASELINE_INSUFFICIENT = "insufficient"


@dataclass
class SpcResult:
    """Control-chart evaluation of one month."""

    month_key: str
    points: pd.DataFrame  # POINT_COLUMNS, one row per metric and day of the month
    violations: pd.DataFrame  # VIOLATION_COLUMNS: one row per run of a rule on a metric
    limits: dict[str, Limits]  # per metric with estimable limits (a typical sigma for per-day charts)
    baselines: dict[str, str] = field(default_factory=dict)  # metric -> full | provisional | insufficient
    notes: list[str] = field(default_factory=list)  # human-readable remarks (provisional baselines, ...)
    alarms: pd.DataFrame = field(default_factory=lambda: _empty(ALARM_COLUMNS))  # one row per cause
    charts: dict[str, str] = field(default_factory=dict)  # metric -> p | weekday | individuals

    @property
    def provisional_metrics(self) -> list[str]:
        return [m for m, kind in self.baselines.items() if kind == BASELINE_PROVISIONAL]

    @property
    def error_count(self) -> int:
        """ERROR alarms (one per cause), the number an operator is paged for."""
        return int((self.alarms["severity"] == "ERROR").sum()) if not self.alarms.empty else 0


def month_bounds(month_key: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First day of the month and first day of the next month (exclusive end)."""
    period = pd.Period(month_key, freq="M")
    return period.start_time.normalize(), (period + 1).start_time.normalize()


def _empty(columns: list[str]) -> pd.DataFrame:
    # Typed empty columns (``string``, not ``object``) so a first write creates VARCHAR columns in DuckDB.
    frame = pd.DataFrame({col: pd.Series(dtype="string") for col in columns})
    for col in columns:
        if col in _DAY_COLUMNS:
            frame[col] = frame[col].astype("datetime64[ns]")
        elif col in {"value", "center", "ucl", "lcl", "ewma", "ewma_ucl", "ewma_lcl"}:
            frame[col] = frame[col].astype(float)
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


def _fit(
    definition: MetricDef,
    days: pd.DatetimeIndex,
    values: FloatArray,
    base: pd.DataFrame,
    denominators: pd.Series | None,
    settings: SpcSettings,
) -> PointLimits:
    """The metric's chart over ``days``/``values`` with limits from ``base`` (its baseline rows)."""
    width = settings.sigma
    base_days = pd.DatetimeIndex(base["day"])
    base_values = base["value"].to_numpy(dtype=float)
    if definition.chart == "p" and denominators is not None:
        n = denominators.reindex(days).to_numpy(dtype=float)
        base_n = denominators.reindex(base_days).to_numpy(dtype=float)
        if np.count_nonzero(base_n > 0) >= 2:
            return p_chart(values, n, base_values, base_n, width, laney=settings.p_chart == "laney")
    if definition.chart == "weekday":
        return weekday_chart(days.dayofweek, base_values, base_days.dayofweek, width)
    return individuals_chart(values, base_values, width, definition.bounds)


def _describe(metric: str, run: Run, days: pd.DatetimeIndex, values: FloatArray, chart: PointLimits) -> str:
    span = slice(run.start, run.end + 1)
    seg = values[span]
    worst = run.start + int(np.nanargmax(seg) if run.side == "above" else np.nanargmin(seg))
    limit = chart.ucl[worst] if run.side == "above" else chart.lcl[worst]
    first, last = days[run.start].date(), days[run.end].date()
    when = f"{first}" if first == last else f"{first}..{last}"
    if chart.constant:
        return (
            f"{metric} {run.rule} {run.side} {when}: value {format_number(float(values[worst]))} on {days[worst].date()} "
            f"differs from the constant baseline {format_number(float(chart.center[worst]))} (sigma 0)"
        )
    return (
        f"{metric} {run.rule} {run.side} {when}: {'peak' if run.side == 'above' else 'low'} "
        f"{format_number(float(values[worst]))} on {days[worst].date()} (centre {format_number(float(chart.center[worst]))}, "
        f"{'UCL' if run.side == 'above' else 'LCL'} {format_number(float(limit))}, {chart.kind} chart)"
    )


def _rules(
    chart: PointLimits, values: FloatArray, settings: SpcSettings
) -> tuple[list[Violation], FloatArray | None]:
    """Rule firings over the series and the standardised values they ran on (None: constant baseline)."""
    if chart.constant:
        # Zones collapse onto the centre: any value off the exact baseline value is a rule1 violation.
        return [
            Violation(i, "rule1", "above" if x > c else "below", "")
            for i, (x, c) in enumerate(zip(values, chart.center, strict=True))
            if not math.isnan(x) and x != c
        ], None
    z = chart.standardise(values)
    unit = limits_from(0.0, 1.0, sigma=chart.width)
    found = western_electric(z, unit) + ewma_violations(
        z, 0.0, 1.0, settings.ewma_lambda, settings.ewma_width
    )
    return found, z


def evaluate(history: pd.DataFrame, month_key: str, settings: SpcSettings, run_id: str) -> SpcResult:
    """Chart ``month_key`` of the daily metrics in ``history`` (``spc_metrics`` rows of all months)."""
    start, end = month_bounds(month_key)
    if settings.baseline == "trailing":
        base_start, base_end = start - pd.Timedelta(days=settings.baseline_days), start
    else:
        base_start = pd.Timestamp(settings.baseline_start)
        base_end = base_start + pd.Timedelta(days=settings.baseline_days)
    hist = _normalise(history)
    counts = hist[hist["metric"] == "flight_count"].set_index("day")["value"]
    holidays = pd.DatetimeIndex([])
    if settings.holiday_calendar == "us_travel" and len(hist):
        listed = holiday_days(hist["day"].min().date(), end.date())
        holidays = pd.DatetimeIndex(sorted(pd.Timestamp(d) for d in listed))

    point_frames: list[pd.DataFrame] = []
    run_rows: list[dict[str, object]] = []
    limits: dict[str, Limits] = {}
    baselines: dict[str, str] = {}
    charts: dict[str, str] = {}
    notes: list[str] = []

    for metric in _metric_order(set(hist["metric"])):
        definition = METRIC_DEFS.get(metric, MetricDef(metric, "", ""))
        series = hist[hist["metric"] == metric]
        upto = series[series["day"] < end].reset_index(drop=True)
        in_month = (upto["day"] >= start).to_numpy()
        if not in_month.any():
            continue
        days = pd.DatetimeIndex(upto["day"])
        values = upto["value"].to_numpy(dtype=float)
        off = days.isin(holidays) if metric in settings.calendar_metrics else np.zeros(len(days), bool)

        window = series[(series["day"] >= base_start) & (series["day"] < base_end)]
        if off.any():
            excused = days[off & in_month]
            if len(excused):
                notes.append(
                    f"{metric}: {', '.join(str(d.date()) for d in excused)} charted, not judged (holiday "
                    "calendar: spc.holiday_calendar)"
                )
        if len(window) >= settings.min_baseline_points:
            kind, base = BASELINE_FULL, window
        else:
            kind, base = BASELINE_PROVISIONAL, upto[in_month]
        if len(base) < 2:
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
                f"limits from the {len(base)} points of {month_key} itself"
            )
        baselines[metric] = kind

        nan = np.full(len(values), math.nan)
        center_v, ucl_v, lcl_v, ewma_v, ewma_u, ewma_l = nan, nan, nan, nan, nan, nan
        runs: list[Run] = []
        chart: PointLimits | None = None
        if kind != BASELINE_INSUFFICIENT:
            denominators = counts if definition.denominator == "flight_count" else None
            chart = _fit(definition, days, values, base, denominators, settings)
            limits[metric], charts[metric] = chart.summary, chart.kind
            center_v, ucl_v, lcl_v = chart.center, chart.ucl, chart.lcl
            # Holidays are no evidence either way: missing to the rules (the EWMA carries over them).
            found, z = _rules(chart, np.where(off, math.nan, values), settings)
            if z is not None:
                # The EWMA of the standardised values, drawn back in the metric's unit around each centre.
                zz, zu, zl = ewma_chart(z, 0.0, 1.0, settings.ewma_lambda, settings.ewma_width)
                ewma_v, ewma_u, ewma_l = (chart.center + s * chart.sigma for s in (zz, zu, zl))
            if metric not in settings.chart_only_metrics:
                runs = runs_of(found, z, chart.width)

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
                    "ewma": ewma_v[in_month],
                    "ewma_ucl": ewma_u[in_month],
                    "ewma_lcl": ewma_l[in_month],
                    "baseline": kind,
                }
            )
        )
        for run in runs:
            if not in_month[run.end]:
                continue
            if not in_month[run.fired]:
                notes.append(
                    f"{metric}: the {run.rule} run raised on {days[run.fired].date()} goes on to "
                    f"{days[run.end].date()} (raised in its own month, not again)"
                )
                continue
            assert chart is not None
            detail = _describe(metric, run, days, values, chart)
            if run.firings > 1:
                detail += f", {run.firings} points completed the pattern"
            if kind == BASELINE_PROVISIONAL:
                detail += " (provisional baseline)"
            run_rows.append(
                {
                    "month_key": month_key,
                    "day": days[run.fired],
                    "metric": metric,
                    "rule": run.rule,
                    "severity": settings.rule_severity.get(run.rule, "WARN"),
                    "side": run.side,
                    "value": float(values[run.fired]),
                    "detail": detail,
                    "run_id": run_id,
                    "start_day": days[run.start],
                    "end_day": days[run.end],
                    "alarm_id": "",
                }
            )

    points = (
        pd.concat(point_frames, ignore_index=True)[POINT_COLUMNS] if point_frames else _empty(POINT_COLUMNS)
    )
    points["day"] = points["day"].astype("datetime64[ns]")
    if run_rows:
        violations = pd.DataFrame(run_rows, columns=VIOLATION_COLUMNS)
        ids, alarms = group_alarms(violations, settings.groups, settings.group_gap_days, month_key, run_id)
        violations["alarm_id"] = ids
        for col in _DAY_COLUMNS:
            violations[col] = violations[col].astype("datetime64[ns]")
        violations["value"] = violations["value"].astype(float)
        violations = violations.sort_values(["day", "metric", "rule"], kind="stable").reset_index(drop=True)
    else:
        violations, alarms = _empty(VIOLATION_COLUMNS), _empty(ALARM_COLUMNS)
    return SpcResult(
        month_key=month_key,
        points=points,
        violations=violations,
        limits=limits,
        baselines=baselines,
        notes=notes,
        alarms=alarms,
        charts=charts,
    )
