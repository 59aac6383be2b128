"""The travel-holiday calendar: days on which a count is low by design, not by a fault.

US airlines fly a reduced schedule on the big travel holidays and their long weekends: in 2013 the daily
flight count from New York fell 20-35 % below its weekday centre on Memorial Day's Sunday, Independence
Day, Labor Day's weekend and Thanksgiving, every one an ERROR alarm of the weekday-adjusted count chart
(docs/spc.md). The schedule is published months ahead, so these days say nothing about the data; the
metrics of ``SpcSettings.calendar_metrics`` are charted on them but not judged by the rules
(``hybridops.spc.control``). The other metrics (delays, cancellations, null rates) still are: a holiday storm is
still caught.

The days, from pandas' holiday rules (``pandas.tseries.holiday``):

* Memorial Day and Labor Day (Mondays): the Saturday, Sunday and Monday of the long weekend;
* Independence Day (July 4): the day, and the Friday after or the Monday before when it falls on a
  Thursday or a Tuesday (the bridge day of a four-day weekend);
* Thanksgiving (fourth Thursday of November): Thursday, Friday and Saturday (the Sunday after is a
  peak, judged like any day);
* Christmas Eve, Christmas Day, New Year's Eve and New Year's Day.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from pandas.tseries.holiday import USLaborDay, USMemorialDay, USThanksgivingDay


def _dates(rule: object, start: date, end: date) -> list[date]:
    return [d.date() for d in rule.dates(pd.Timestamp(start), pd.Timestamp(end))]  # type: ignore[attr-defined]


def holiday_days(start: date, end: date) -> set[date]:
    """The travel-holiday days in ``[start, end]`` (see the module docstring)."""
    # Rules are evaluated over whole years around the range: a long weekend may straddle its ends.
    lo, hi = date(start.year - 1, 1, 1), date(end.year + 1, 12, 31)
    days: set[date] = set()
    for monday in [*_dates(USMemorialDay, lo, hi), *_dates(USLaborDay, lo, hi)]:
        days.update(monday - timedelta(days=k) for k in (0, 1, 2))
    for thursday in _dates(USThanksgivingDay, lo, hi):
        days.update(thursday + timedelta(days=k) for k in (0, 1, 2))
    for year in range(lo.year, hi.year + 1):
        july4 = date(year, 7, 4)
        days.add(july4)
        if july4.weekday() == 3:  # Thursday: Friday is the bridge day
            days.add(july4 + timedelta(days=1))
        elif july4.weekday() == 1:  # Tuesday: Monday is
            days.add(july4 - timedelta(days=1))
        days.update((date(year, 12, 24), date(year, 12, 25), date(year, 12, 31), date(year, 1, 1)))
    return {d for d in days if start <= d <= end}
