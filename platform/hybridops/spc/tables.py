"""Markdown tables of SPC results for the Dagster UI and reports: one metric's chart, the month's alarms."""

from __future__ import annotations

import math

import pandas as pd


def format_number(x: float) -> str:
    """A chart value for a table: 1 decimal from 100 up, 4 significant digits below, empty for NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.4g}"


def control_chart_markdown(points: pd.DataFrame, metric: str, violations: pd.DataFrame | None = None) -> str:
    """A markdown table of one metric's chart: day, value, centre, LCL, UCL and a ✗ on violating days.

    With ``violations`` (the ``SpcResult.violations`` frame, one row per run) every day of a run
    (``start_day``..``end_day``) is marked with its rule; without it, a day is marked when its value lies
    outside [LCL, UCL].
    """
    rows = points[points["metric"] == metric].sort_values("day")
    fired: dict[pd.Timestamp, list[str]] = {}
    if violations is not None and not violations.empty:
        mine = violations[violations["metric"] == metric]
        starts = mine["start_day"] if "start_day" in mine else mine["day"]
        ends = mine["end_day"] if "end_day" in mine else mine["day"]
        for first, last, rule in zip(pd.to_datetime(starts), pd.to_datetime(ends), mine["rule"], strict=True):
            for day in pd.date_range(pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()):
                fired.setdefault(day, []).append(str(rule))
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
            f"| {day.date()} | {format_number(value)} | {format_number(float(row.center))} | {format_number(lcl)} | {format_number(ucl)} "
            f"| {signal} |"
        )
    return "\n".join(lines)


def alarms_markdown(alarms: pd.DataFrame) -> str:
    """A markdown table of the alarms (``SpcResult.alarms``): one line per cause with its evidence."""
    if alarms.empty:
        return "No SPC alarm."
    lines = ["| raised | days | severity | metrics | rules | evidence |", "|---|---|---|---|---|---|"]
    for row in alarms.sort_values("day").itertuples(index=False):
        first, last = pd.Timestamp(row.start_day).date(), pd.Timestamp(row.end_day).date()
        span = f"{first}" if first == last else f"{first}..{last}"
        evidence = str(row.evidence).replace("|", "/")
        lines.append(
            f"| {pd.Timestamp(row.day).date()} | {span} | {row.severity} | {row.metrics} | {row.rules} "
            f"| {evidence} |"
        )
    return "\n".join(lines)
