"""One declared pandera schema per source table: types, physical ranges, required columns, key uniqueness.

Every check carries an ``error`` of the form ``"<rule>: <what must hold>"``; the part before the colon is
the row-level rule it belongs to (``range``, ``timestamp``) and becomes the quarantine ``check_name``.
Null-handling: value checks ignore nulls; only ``nullable=False`` columns (rule ``required``) reject them.
Referential rules need the other tables' keys and live in :mod:`hybridops.quality.validate`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from hybridops.settings import QualitySettings

LOCAL_TZ = "America/New_York"

# Rule names of row-level problems (quarantine check_name values), in reporting order.
TYPE, FIELD_COUNT, RANGE, REQUIRED, DUPLICATE_KEY, TIMESTAMP = (
    "type",
    "field_count",
    "range",
    "required",
    "duplicate_key",
    "timestamp",
)
CARRIER_IN_AIRLINES, ORIGIN_IN_AIRPORTS = "carrier_in_airlines", "origin_in_airports"

KEYS: dict[str, list[str]] = {
    "flights": ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"],
    "weather": ["origin", "time_hour"],
    "planes": ["tailnum"],
    "airlines": ["carrier"],
    "airports": ["faa"],
}


def between(column: str, low: float | None = None, high: float | None = None) -> pa.Check:
    """Named range check ``low <= column <= high`` (either bound optional)."""
    bounds = f"{'' if low is None else f'{low:g} <= '}{column}{'' if high is None else f' <= {high:g}'}"
    return pa.Check.in_range(
        min_value=-np.inf if low is None else low,
        max_value=np.inf if high is None else high,
        name=f"{RANGE}_{column}",
        error=f"{RANGE}: {bounds}",
    )


def positive(column: str, high: float | None = None) -> pa.Check:
    """Named range check ``0 < column`` (and ``<= high`` when given)."""
    if high is None:
        return pa.Check.gt(0, name=f"{RANGE}_{column}", error=f"{RANGE}: {column} > 0")
    return pa.Check.in_range(
        min_value=0,
        max_value=high,
        include_min=False,
        name=f"{RANGE}_{column}",
        error=f"{RANGE}: 0 < {column} <= {high:g}",
    )


# No two places on Earth are farther apart along its surface than half a great circle (20,037.5 km), and no
# scheduled flight stays in the air for a day: a value past either is a corrupt record, not a long flight.
MAX_DISTANCE_MILES = 12_451
MAX_AIR_TIME_MINUTES = 24 * 60


def clock(column: str, high: int) -> list[pa.Check]:
    """An HHMM clock time: ``0 <= value <= high`` and minutes below 60."""
    return [
        between(column, 0, high),
        pa.Check(
            lambda s: (s % 100 < 60).fillna(True),
            name=f"{RANGE}_{column}_minutes",
            error=f"{RANGE}: {column} minutes (last two digits) < 60",
        ),
    ]


def local_hour_to_utc(frame: pd.DataFrame, hour: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Both UTC readings of the New York local year/month/day/``hour`` (they differ only in the DST
    fall-back hour, where a local hour happens twice); NaT when the local time does not exist."""
    local = pd.to_datetime(
        pd.DataFrame(
            {
                "year": frame["year"].astype("float64"),
                "month": frame["month"].astype("float64"),
                "day": frame["day"].astype("float64"),
                "hour": hour.astype("float64"),
            }
        ),
        errors="coerce",
    )
    readings = []
    for dst in (True, False):
        aware = local.dt.tz_localize(LOCAL_TZ, ambiguous=np.full(len(local), dst), nonexistent="NaT")
        readings.append(aware.dt.tz_convert("UTC").dt.tz_localize(None))
    return readings[0], readings[1]


def time_hour_matches_local(hour_of: str | None = None) -> pa.Check:
    """``time_hour`` (UTC) equals the local year/month/day/hour converted from New York time.

    Args:
        hour_of: derive the local hour from this HHMM column (flights: ``sched_dep_time``) instead of
            the ``hour`` column.
    """

    def check(frame: pd.DataFrame) -> pd.Series:
        hour = frame[hour_of] // 100 if hour_of else frame["hour"]
        dst, standard = local_hour_to_utc(frame, hour)
        inputs = frame[["year", "month", "day", "time_hour"]].notna().all(axis=1) & hour.notna()
        ok = (frame["time_hour"] == dst) | (frame["time_hour"] == standard)
        return (ok.fillna(False) | ~inputs).astype(bool)

    source = f"{hour_of}//100" if hour_of else "hour"
    return pa.Check(
        check,
        name=f"{TIMESTAMP}_time_hour",
        error=f"{TIMESTAMP}: time_hour (UTC) equals local year/month/day/{source} in {LOCAL_TZ}",
    )


def hhmm_parts_match() -> pa.Check:
    """Flights' ``hour``/``minute`` are the two halves of ``sched_dep_time``."""

    def check(frame: pd.DataFrame) -> pd.Series:
        ok = (frame["hour"] == frame["sched_dep_time"] // 100) & (
            frame["minute"] == frame["sched_dep_time"] % 100
        )
        return ok.fillna(True).astype(bool)

    return pa.Check(
        check,
        name=f"{TIMESTAMP}_hour_minute",
        error=f"{TIMESTAMP}: hour = sched_dep_time // 100 and minute = sched_dep_time % 100",
    )


def _col(dtype: str, checks: list[pa.Check] | pa.Check | None = None, required: bool = False) -> pa.Column:
    return pa.Column(dtype, checks=checks, nullable=not required)


def _lineage(monthly: bool) -> dict[str, pa.Column]:
    cols = {"_source_file": _col("string"), "_source_line": _col("Int64")}
    if monthly:
        cols["month_key"] = _col("string")
    return cols


def flights_schema(settings: QualitySettings) -> pa.DataFrameSchema:
    delay = settings.max_abs_delay_minutes
    return pa.DataFrameSchema(
        {
            "year": _col("Int64", between("year", 1900, 2100), required=True),
            "month": _col("Int64", between("month", 1, 12), required=True),
            "day": _col("Int64", between("day", 1, 31), required=True),
            "dep_time": _col("Int64", clock("dep_time", 2400)),
            "sched_dep_time": _col("Int64", clock("sched_dep_time", 2359), required=True),
            "dep_delay": _col("Int64", between("dep_delay", -delay, delay)),
            "arr_time": _col("Int64", clock("arr_time", 2400)),
            "sched_arr_time": _col("Int64", clock("sched_arr_time", 2359), required=True),
            "arr_delay": _col("Int64", between("arr_delay", -delay, delay)),
            "carrier": _col("string", required=True),
            "flight": _col("Int64", positive("flight"), required=True),
            "tailnum": _col("string"),
            "origin": _col("string", required=True),
            "dest": _col("string", required=True),
            "air_time": _col("Int64", positive("air_time", MAX_AIR_TIME_MINUTES)),
            "distance": _col("Int64", positive("distance", MAX_DISTANCE_MILES), required=True),
            "hour": _col("Int64", between("hour", 0, 23), required=True),
            "minute": _col("Int64", between("minute", 0, 59), required=True),
            "time_hour": _col("datetime64[ns]", required=True),
            **_lineage(monthly=True),
        },
        checks=[time_hour_matches_local(hour_of="sched_dep_time"), hhmm_parts_match()],
        unique=KEYS["flights"],
        report_duplicates="exclude_first",
        name="flights",
    )


def weather_schema(settings: QualitySettings) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "origin": _col("string", required=True),
            "year": _col("Int64", between("year", 1900, 2100), required=True),
            "month": _col("Int64", between("month", 1, 12), required=True),
            "day": _col("Int64", between("day", 1, 31), required=True),
            "hour": _col("Int64", between("hour", 0, 23), required=True),
            "temp": _col("float64", between("temp", -40, 130)),
            "dewp": _col("float64", between("dewp", -80, 130)),
            "humid": _col("float64", between("humid", 0, 100)),
            "wind_dir": _col("Int64", between("wind_dir", 0, 360)),
            "wind_speed": _col("float64", between("wind_speed", 0, settings.max_wind_speed_mph)),
            "wind_gust": _col("float64", between("wind_gust", 0, settings.max_wind_speed_mph * 1.5)),
            "precip": _col("float64", between("precip", 0)),
            "pressure": _col("float64", between("pressure", 900, 1100)),
            "visib": _col("float64", between("visib", 0, 10)),
            "time_hour": _col("datetime64[ns]", required=True),
            **_lineage(monthly=True),
        },
        checks=[time_hour_matches_local()],
        unique=KEYS["weather"],
        report_duplicates="exclude_first",
        name="weather",
    )


def planes_schema(settings: QualitySettings) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "tailnum": _col("string", required=True),
            "year": _col("Int64", between("year", 1900, 2013)),
            "type": _col("string"),
            "manufacturer": _col("string"),
            "model": _col("string"),
            "engines": _col("Int64", between("engines", 0, 8)),
            "seats": _col("Int64", positive("seats")),
            "speed": _col("Int64", positive("speed")),
            "engine": _col("string"),
            **_lineage(monthly=False),
        },
        unique=KEYS["planes"],
        report_duplicates="exclude_first",
        name="planes",
    )


def airlines_schema(settings: QualitySettings) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "carrier": _col("string", required=True),
            "name": _col("string", required=True),
            **_lineage(monthly=False),
        },
        unique=KEYS["airlines"],
        report_duplicates="exclude_first",
        name="airlines",
    )


def airports_schema(settings: QualitySettings) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "faa": _col("string", required=True),
            "name": _col("string"),
            "lat": _col("float64", between("lat", -90, 90), required=True),
            "lon": _col("float64", between("lon", -180, 180), required=True),
            "alt": _col("Int64", between("alt", -1500, 30000)),
            "tz": _col("Int64", between("tz", -12, 14)),
            "dst": _col("string"),
            "tzone": _col("string"),
            **_lineage(monthly=False),
        },
        unique=KEYS["airports"],
        report_duplicates="exclude_first",
        name="airports",
    )


SCHEMAS = {
    "flights": flights_schema,
    "weather": weather_schema,
    "planes": planes_schema,
    "airlines": airlines_schema,
    "airports": airports_schema,
}


def schema_for(table: str, settings: QualitySettings) -> pa.DataFrameSchema:
    """The pandera schema of ``table`` with the thresholds in ``settings``."""
    return SCHEMAS[table](settings)
