"""Daily data metrics of one monthly partition: the points statistical process control charts.

A day is a New York local calendar day (the ``year, month, day`` columns of both sources). The days of a
month are the days on which either source has at least one row. Counts (``flight_count``,
``weather_hours``) are defined on every such day (0 when one source has no rows that day); a rate or mean
whose denominator is empty that day is undefined and the row is left out (so ``value`` is never NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

METRIC_COLUMNS = ["month_key", "day", "metric", "value"]


ChartKind = Literal["p", "weekday", "individuals"]


@dataclass(frozen=True)
class MetricDef:
    """A tracked daily data metric and the control chart that suits it.

    ``chart``: ``p`` for a share of the day's flights (binomial limits from the day's ``denominator``,
    another metric of the same day), ``weekday`` for a count with a weekly pattern (a centre per day of
    the week), ``individuals`` for the rest (X/mR). ``bounds`` are where the metric can go; the limits
    are clipped to them.
    """

    name: str
    description: str
    unit: str
    chart: ChartKind = "individuals"
    denominator: str | None = None
    bounds: tuple[float | None, float | None] = (None, None)


def _rate(name: str, description: str) -> MetricDef:
    return MetricDef(name, description, "ratio", "p", "flight_count", (0.0, 1.0))


METRICS: tuple[MetricDef, ...] = (
    MetricDef(
        "flight_count",
        "Flights scheduled to depart that day (all origins).",
        "flights",
        "weekday",
        None,
        (0.0, None),
    ),
    _rate("cancellation_rate", "Share of the day's flights without a departure time (cancelled)."),
    MetricDef("dep_delay_mean", "Mean departure delay of the day's flights that departed.", "minutes"),
    _rate("dep_delay_null_rate", "Share of the day's flights with a missing departure delay."),
    _rate("arr_delay_null_rate", "Share of the day's flights with a missing arrival delay."),
    _rate("tailnum_null_rate", "Share of the day's flights with a missing tail number."),
    MetricDef("weather_temp_mean", "Mean hourly temperature over all origins' observations.", "°F"),
    MetricDef("weather_wind_speed_mean", "Mean hourly wind speed over all origins' observations.", "mph"),
    MetricDef(
        "weather_precip_total", "Sum of hourly precipitation over all origins' observations.", "inches"
    ),
    MetricDef("weather_visib_mean", "Mean hourly visibility over all origins' observations.", "miles"),
    MetricDef(
        "weather_hours",
        "Hourly weather observations that day (rows, all origins).",
        "rows",
        bounds=(0.0, None),
    ),
)

# The columns daily_metrics reads (a caller reading the tables can select only these).
FLIGHT_COLUMNS: tuple[str, ...] = ("year", "month", "day", "dep_time", "dep_delay", "arr_delay", "tailnum")
WEATHER_COLUMNS: tuple[str, ...] = ("year", "month", "day", "temp", "wind_speed", "precip", "visib")

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
METRIC_DESCRIPTIONS: dict[str, str] = {m.name: m.description for m in METRICS}
METRIC_DEFS: dict[str, MetricDef] = {m.name: m for m in METRICS}


def _month_rows(frame: pd.DataFrame, month_key: str) -> pd.DataFrame:
    """Rows of ``frame`` in ``month_key`` with a ``_day`` column (naive local date, datetime64[ns])."""
    year, month = (int(part) for part in month_key.split("-"))
    if frame.empty:
        out = frame.copy()
    else:
        years = pd.to_numeric(frame["year"], errors="coerce")
        months = pd.to_numeric(frame["month"], errors="coerce")
        out = frame.loc[(years == year) & (months == month)].copy()
    if out.empty:
        out["_day"] = pd.Series(dtype="datetime64[ns]")
        return out
    parts = pd.DataFrame(
        {"year": out["year"].astype(int), "month": out["month"].astype(int), "day": out["day"].astype(int)}
    )
    out["_day"] = pd.to_datetime(parts).astype("datetime64[ns]")
    return out


def _num(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _is_blank(series: pd.Series) -> pd.Series:
    """Null, or an empty / whitespace-only string."""
    text = series.astype("string").str.strip()
    return (series.isna() | text.eq("").fillna(False)).astype(bool)


def daily_metrics(flights: pd.DataFrame, weather: pd.DataFrame, month_key: str) -> pd.DataFrame:
    """One row per (day, metric) of ``month_key``: ``month_key, day, metric, value``.

    The frames need ``FLIGHT_COLUMNS`` and ``WEATHER_COLUMNS`` (others are ignored). Rows of either frame
    outside ``month_key`` are ignored. Sorted by day, then by ``METRICS`` order.
    """
    fl = _month_rows(flights, month_key)
    we = _month_rows(weather, month_key)

    per_day: dict[str, pd.Series] = {}
    if not fl.empty:
        cancelled = _num(fl, "dep_time").isna()
        dep_delay = _num(fl, "dep_delay")
        frame = pd.DataFrame(
            {
                "_day": fl["_day"],
                "cancelled": cancelled.astype(float),
                "dep_delay_departed": dep_delay.where(~cancelled),
                "dep_delay_null": dep_delay.isna().astype(float),
                "arr_delay_null": _num(fl, "arr_delay").isna().astype(float),
                "tailnum_null": _is_blank(fl["tailnum"]).astype(float),
            }
        )
        grouped = frame.groupby("_day")
        per_day["flight_count"] = grouped.size().astype(float)
        per_day["cancellation_rate"] = grouped["cancelled"].mean()
        per_day["dep_delay_mean"] = grouped["dep_delay_departed"].mean()
        per_day["dep_delay_null_rate"] = grouped["dep_delay_null"].mean()
        per_day["arr_delay_null_rate"] = grouped["arr_delay_null"].mean()
        per_day["tailnum_null_rate"] = grouped["tailnum_null"].mean()
    if not we.empty:
        wframe = pd.DataFrame(
            {
                "_day": we["_day"],
                "temp": _num(we, "temp"),
                "wind_speed": _num(we, "wind_speed"),
                "precip": _num(we, "precip"),
                "visib": _num(we, "visib"),
            }
        )
        wgrouped = wframe.groupby("_day")
        per_day["weather_temp_mean"] = wgrouped["temp"].mean()
        per_day["weather_wind_speed_mean"] = wgrouped["wind_speed"].mean()
        per_day["weather_precip_total"] = wgrouped["precip"].sum(min_count=1)
        per_day["weather_visib_mean"] = wgrouped["visib"].mean()
        per_day["weather_hours"] = wgrouped.size().astype(float)

    # unique() on the datetime64 values: a Python set of 28k Timestamps a month cost ~0.1 s
    both = pd.concat([fl["_day"], we["_day"]], ignore_index=True).astype("datetime64[ns]")
    days = pd.DatetimeIndex(both.unique(), name="_day").sort_values()
    if days.empty:
        return pd.DataFrame(
            {
                "month_key": pd.Series(dtype="string"),
                "day": pd.Series(dtype="datetime64[ns]"),
                "metric": pd.Series(dtype="string"),
                "value": pd.Series(dtype=float),
            }
        )
    wide = pd.DataFrame(index=days)
    for name in METRIC_NAMES:
        series = per_day.get(name)
        wide[name] = series.reindex(days) if series is not None else float("nan")
    # Counts are zero (not undefined) on a day the other source has rows but this one has none.
    for count in ("flight_count", "weather_hours"):
        wide[count] = wide[count].fillna(0.0)

    long = wide.reset_index(names="day").melt(id_vars="day", var_name="metric", value_name="value")
    long = long.dropna(subset=["value"])
    order = {name: i for i, name in enumerate(METRIC_NAMES)}
    long["_order"] = long["metric"].map(order)
    long = long.sort_values(["day", "_order"]).drop(columns="_order")
    long.insert(0, "month_key", month_key)
    long["day"] = long["day"].astype("datetime64[ns]")
    long["metric"] = long["metric"].astype(str)
    long["value"] = long["value"].astype(float)
    return long[METRIC_COLUMNS].reset_index(drop=True)
