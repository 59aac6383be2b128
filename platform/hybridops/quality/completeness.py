"""Completeness per key and period: every origin's hours of weather, every day's flights, in one month.

Row rules see rows that are there; these checks see rows that are not. A whole airport's month of weather
missing, or a day without (or with far too few) flights, fails with the file, the keys and the days named.
Thresholds and severity (blocking or warn) come from :class:`hybridops.settings.QualitySettings`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from hybridops.quality.validate import COMPLETENESS_CHECKS, CheckOutcome
from hybridops.settings import QualitySettings

WEATHER_HOURS = COMPLETENESS_CHECKS["weather"]
DAILY_FLIGHTS = COMPLETENESS_CHECKS["flights"]
_SHOWN = 8  # keys or days listed in a message; the count says how many there are


def completeness_check(
    table: str,
    good: pd.DataFrame,
    month_key: str,
    source_file: str,
    settings: QualitySettings,
    expected_origins: Iterable[str] = (),
) -> CheckOutcome | None:
    """The completeness check of ``table`` for ``month_key`` (``YYYY-MM``), or None for other tables."""
    if table == "weather":
        return _weather(good, month_key, source_file, settings, sorted(set(expected_origins)))
    if table == "flights":
        return _flights(good, month_key, source_file, settings)
    return None


def _outcome(
    name: str, problems: list[str], ok_message: str, settings: QualitySettings, **meta
) -> CheckOutcome:
    blocking = settings.completeness_severity == "blocking"
    shown = "; ".join(problems[:_SHOWN]) + (
        f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    )
    return CheckOutcome(
        name,
        not problems,
        "ERROR" if blocking else "WARN",
        blocking,
        ok_message if not problems else shown + "; check that the source file is complete for this month",
        meta,
    )


def _days(month_key: str) -> pd.DatetimeIndex:
    period = pd.Period(month_key, freq="M")
    return pd.date_range(period.start_time, periods=period.days_in_month, freq="D")


def _day_index(good: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(
        pd.DataFrame({"year": good["year"], "month": good["month"], "day": good["day"]}).astype("float64"),
        errors="coerce",
    )


def _weather(
    good: pd.DataFrame, month_key: str, source_file: str, settings: QualitySettings, origins: list[str]
) -> CheckOutcome:
    days = _days(month_key)
    origins = origins or sorted(good["origin"].dropna().astype(str).unique())
    hours = (
        pd.DataFrame({"origin": good["origin"].astype(str), "day": _day_index(good), "hour": good["hour"]})
        .dropna()
        .drop_duplicates()
        .groupby(["origin", "day"])
        .size()
        .reindex(pd.MultiIndex.from_product([origins, days], names=["origin", "day"]), fill_value=0)
        .unstack("day")
    )
    expected = len(days) * 24
    share = hours.sum(axis=1) / expected
    gaps = (hours < settings.min_weather_hours_per_day).sum(axis=1)
    problems = []
    for origin in origins:
        if share[origin] < settings.min_weather_hours_ratio:
            problems.append(
                f"{origin} has {int(hours.loc[origin].sum())} of {expected} hours of weather in {month_key} "
                f"({share[origin]:.0%}; limit {settings.min_weather_hours_ratio:.0%})"
            )
        elif gaps[origin] > settings.max_weather_gap_days:
            short = [
                d.strftime("%Y-%m-%d")
                for d in days[hours.loc[origin].to_numpy() < settings.min_weather_hours_per_day]
            ]
            problems.append(
                f"{origin} has {int(gaps[origin])} day(s) under {settings.min_weather_hours_per_day} hours of "
                f"weather (allowed {settings.max_weather_gap_days}): {', '.join(short[:_SHOWN])}"
            )
    return _outcome(
        WEATHER_HOURS,
        [f"{source_file}: {p}" for p in problems],
        f"{source_file}: every origin ({', '.join(origins)}) has weather for {month_key} "
        f"(lowest {share.min() if len(share) else 0:.0%} of hours)",
        settings,
        origins=len(origins),
        incomplete_origins=len(problems),
        min_hours_ratio=float(share.min()) if len(share) else 0.0,
    )


def _flights(good: pd.DataFrame, month_key: str, source_file: str, settings: QualitySettings) -> CheckOutcome:
    days = _days(month_key)
    counts = _day_index(good).value_counts().reindex(days, fill_value=0)
    median = float(np.median(counts.to_numpy())) if len(counts) else 0.0
    floor = settings.min_daily_flights_ratio * median
    low = counts[(counts < floor) | (counts == 0)]
    problems = (
        [
            f"{source_file}: {len(low)} day(s) of {month_key} with no or too few flights "
            f"(under {settings.min_daily_flights_ratio:.0%} of the median day, {median:.0f}): "
            + ", ".join(f"{d:%Y-%m-%d} ({n})" for d, n in list(low.items())[:_SHOWN])
        ]
        if len(low)
        else []
    )
    return _outcome(
        DAILY_FLIGHTS,
        problems,
        f"{source_file}: every day of {month_key} has flights (fewest {int(counts.min())}, median {median:.0f})",
        settings,
        days=len(days),
        incomplete_days=len(low),
        min_daily_flights=int(counts.min()) if len(counts) else 0,
    )
