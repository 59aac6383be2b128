"""From rule firings to alarms an operator reads: one per run of points, one per cause.

* **Runs.** A rule fires at every point that completes its pattern, so a long run fires again and again
  (8 days below the centre and then 5 more: rule4 fires 6 times). :func:`runs_of` merges the firings of one
  rule on one side whose windows touch into one :class:`Run` with the first point of its pattern, the point
  that first completed it (when the alarm would have been raised) and the last point that extended it.
* **Causes.** A storm cancels flights, delays the ones that go and leaves their delays and tail numbers
  null, on the same days: five metrics, one cause. :func:`group_alarms` merges the runs of the metrics of
  one group (``SpcSettings.groups``) and one severity whose day spans overlap or lie at most ``gap_days``
  apart into one alarm that lists its metrics, rules and the evidence of each run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridops.spc.charts import FloatArray
from hybridops.spc.rules import Side, Violation

# Points a rule's pattern spans, and the zone (in sigma) its points lie beyond (None: not a zone rule).
RULE_WINDOW: dict[str, int] = {"rule1": 1, "rule2": 3, "rule3": 5, "rule4": 8, "ewma": 1}
_ZONE: dict[str, float] = {"rule2": 2.0, "rule3": 1.0, "rule4": 0.0}

ALARM_COLUMNS = [
    "month_key",
    "alarm_id",
    "group",
    "day",
    "start_day",
    "end_day",
    "severity",
    "metrics",
    "rules",
    "evidence",
    "run_id",
]


@dataclass(frozen=True)
class Run:
    """Consecutive firings of one rule on one side of one series (positions into the series)."""

    rule: str
    side: Side
    start: int  # first point of the pattern that first fired
    fired: int  # the point that first completed the pattern: when the alarm is raised
    end: int  # the last point that completed the pattern again
    firings: int  # how many points completed it (what rule-per-point charts used to report)


def _pattern_start(rule: str, side: Side, index: int, z: FloatArray | None, width: float) -> int:
    """First point of the window of ``rule`` ending at ``index`` that lies in the rule's zone."""
    window = RULE_WINDOW.get(rule, 1)
    if z is None or window == 1:
        return index
    zone = _ZONE.get(rule, width)
    lo = max(0, index - window + 1)
    seg = z[lo : index + 1]
    with np.errstate(invalid="ignore"):
        inside = seg > zone if side == "above" else seg < -zone
    hits = np.flatnonzero(inside)
    return lo + int(hits[0]) if len(hits) else index


def runs_of(violations: Sequence[Violation], z: FloatArray | None = None, width: float = 3.0) -> list[Run]:
    """Merge the firings of each (rule, side) whose pattern windows overlap or touch into runs.

    ``z`` (the standardised series the rules ran on) locates the first point of each pattern; without it
    a run starts at its first firing. Ordered by the point that first fired, then rule.
    """
    by_key: dict[tuple[str, Side], list[int]] = {}
    for v in violations:
        by_key.setdefault((v.rule, v.side), []).append(v.index)
    runs: list[Run] = []
    for (rule, side), indexes in by_key.items():
        window = RULE_WINDOW.get(rule, 1)
        current: list[int] = []
        for index in sorted(set(indexes)):
            # The next firing's window (index - window + 1 .. index) reaches the run's last point + 1.
            if current and index - window + 1 <= current[-1] + 1:
                current.append(index)
                continue
            if current:
                runs.append(_run(rule, side, current, z, width))
            current = [index]
        if current:
            runs.append(_run(rule, side, current, z, width))
    return sorted(
        runs, key=lambda r: (r.fired, list(RULE_WINDOW).index(r.rule) if r.rule in RULE_WINDOW else 9)
    )


def _run(rule: str, side: Side, indexes: list[int], z: FloatArray | None, width: float) -> Run:
    return Run(
        rule, side, _pattern_start(rule, side, indexes[0], z, width), indexes[0], indexes[-1], len(indexes)
    )


def group_alarms(
    runs: pd.DataFrame,
    groups: Mapping[str, Sequence[str]],
    gap_days: int,
    month_key: str,
    run_id: str,
) -> tuple[list[str], pd.DataFrame]:
    """One alarm per cause: the alarm id of each row of ``runs`` and the alarms (``ALARM_COLUMNS``).

    ``runs`` has one row per run: ``metric, rule, severity, day`` (first firing), ``start_day``,
    ``end_day`` and ``detail``. A metric in no group is a group of its own. ERROR runs and WARN runs
    cluster apart: a weeks-long WARN run (rule4, EWMA) would otherwise chain every storm of a month into
    one alarm.
    """
    group_of = {metric: name for name, metrics in groups.items() for metric in metrics}
    records = runs.to_dict(orient="records")
    ids = [""] * len(records)
    gap = pd.Timedelta(days=gap_days)
    clusters: dict[tuple[str, str], list[list[int]]] = {}
    ends: dict[tuple[str, str], pd.Timestamp] = {}
    order = sorted(range(len(records)), key=lambda i: (records[i]["start_day"], records[i]["day"]))
    for i in order:
        row = records[i]
        key = (group_of.get(str(row["metric"]), str(row["metric"])), str(row["severity"]))
        start, end = pd.Timestamp(row["start_day"]), pd.Timestamp(row["end_day"])
        if key in clusters and start <= ends[key] + gap:
            clusters[key][-1].append(i)
            ends[key] = max(ends[key], end)
        else:
            clusters.setdefault(key, []).append([i])
            ends[key] = end
    alarms: list[dict[str, object]] = []
    for (group, severity), members_list in sorted(clusters.items()):
        for members in members_list:
            part = sorted((records[i] for i in members), key=lambda r: (r["day"], str(r["metric"])))
            start = min(pd.Timestamp(r["start_day"]) for r in part)
            alarm_id = f"{group}:{severity}:{start.date()}"
            for i in members:
                ids[i] = alarm_id
            alarms.append(
                {
                    "month_key": month_key,
                    "alarm_id": alarm_id,
                    "group": group,
                    "day": min(pd.Timestamp(r["day"]) for r in part),
                    "start_day": start,
                    "end_day": max(pd.Timestamp(r["end_day"]) for r in part),
                    "severity": severity,
                    "metrics": ", ".join(dict.fromkeys(str(r["metric"]) for r in part)),
                    "rules": ", ".join(sorted({str(r["rule"]) for r in part})),
                    "evidence": "; ".join(str(r["detail"]) for r in part),
                    "run_id": run_id,
                }
            )
    if not alarms:
        return ids, pd.DataFrame({c: pd.Series(dtype="string") for c in ALARM_COLUMNS})
    table = pd.DataFrame(alarms, columns=ALARM_COLUMNS).sort_values(["day", "group"], kind="stable")
    for day_column in ("day", "start_day", "end_day"):
        table[day_column] = table[day_column].astype("datetime64[ns]")
    return ids, table.reset_index(drop=True)
