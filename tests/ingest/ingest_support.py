"""Fixtures for ingest tests: tiny CSV files written to tmp_path, landed and parsed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hybridops.ingest.landing import land_file
from hybridops.ingest.parse import ParseResult, clear_cache, parse_table
from hybridops.ingest.sources import packaged_source_dir

FLIGHTS_HEADER = (
    "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,carrier,flight,"
    "tailnum,origin,dest,air_time,distance,hour,minute,time_hour"
)
FLIGHT_ROW = "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z"
WEATHER_HEADER = (
    "origin,year,month,day,hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,visib,time_hour"
)
WEATHER_ROW = "EWR,2013,1,1,1,39.02,26.06,59.37,270,10.357,NA,0,1012,10,2013-01-01T06:00:00Z"


@pytest.fixture(autouse=True)
def _fresh_parse_cache() -> None:
    clear_cache()


@pytest.fixture
def real_dir() -> Path:
    return packaged_source_dir()


@pytest.fixture
def parse_text(tmp_path: Path) -> Callable[..., ParseResult]:
    """Write ``text`` as the table's source file, land it and parse it."""

    def run(
        table: str, text: str | bytes, month_key: str | None = None, name: str | None = None
    ) -> ParseResult:
        src = tmp_path / "src" / (name or f"{table}.csv")
        src.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, str):
            src.write_text(text)
        else:
            src.write_bytes(text)
        landed = land_file(src, table, tmp_path / "landing")
        return parse_table(landed, month_key)

    return run
