"""Fixtures for quality tests: hand-made frames, the real landed files and broken copies of them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from hybridops.ingest.landing import LandedFile, land_file
from hybridops.ingest.parse import ParseResult, parse_table
from hybridops.ingest.sources import TABLES, packaged_source_dir, source_file
from hybridops.quality.validate import References, validate_table
from hybridops.settings import QualitySettings

FLIGHTS_HEADER = (
    "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,carrier,flight,"
    "tailnum,origin,dest,air_time,distance,hour,minute,time_hour"
)
FLIGHT_ROW = "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z"
WEATHER_HEADER = (
    "origin,year,month,day,hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,visib,time_hour"
)
WEATHER_ROW = "EWR,2013,1,1,1,39.02,26.06,59.37,270,10.357,NA,0,1012,10,2013-01-01T06:00:00Z"


@pytest.fixture(scope="session")
def real_landed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LandedFile]:
    landing = tmp_path_factory.mktemp("landing")
    return {t: land_file(source_file(packaged_source_dir(), t), t, landing) for t in TABLES}


@pytest.fixture(scope="session")
def real_refs(real_landed: dict[str, LandedFile]) -> References:
    good = {
        t: validate_table(t, parse_table(real_landed[t]), References(), QualitySettings(), "setup").good
        for t in ("airlines", "airports", "planes")
    }
    return References.from_frames(good["airlines"], good["airports"], good["planes"])


@pytest.fixture
def refs() -> References:
    return References(carriers={"UA", "AA"}, airports={"EWR", "LGA", "JFK", "IAH"}, tailnums={"N14228"})


@pytest.fixture
def parse_rows(tmp_path: Path) -> Callable[..., ParseResult]:
    """Write a header and rows as the table's CSV, land and parse it."""
    counter = iter(range(1_000))

    def run(table: str, header: str, *rows: str, month_key: str | None = None) -> ParseResult:
        folder = tmp_path / f"src{next(counter)}"
        folder.mkdir()
        src = folder / f"{table}.csv"
        src.write_text("\n".join([header, *rows]) + "\n")
        return parse_table(land_file(src, table, tmp_path / "landing"), month_key)

    return run


@pytest.fixture
def broken_source(tmp_path: Path) -> Callable[[str, Callable[[bytes], bytes]], Path]:
    """A source folder copied from the real files with one file rewritten by ``defect``."""

    def make(table: str, defect: Callable[[bytes], bytes]) -> Path:
        folder = tmp_path / "source"
        folder.mkdir(exist_ok=True)
        for t in TABLES:
            src = source_file(packaged_source_dir(), t)
            if t == table:
                (folder / src.name).write_bytes(defect(src.read_bytes()))
            elif not (folder / src.name).exists():
                shutil.copyfile(src, folder / src.name)
        return folder

    return make
