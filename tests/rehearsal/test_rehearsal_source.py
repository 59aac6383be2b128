"""The source dropped month by month (whole-table files rewritten atomically with one more month each time),
and the summary's arithmetic over run records and run logs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hybridops.errors import SourceError
from hybridops.rehearsal import dagster_api
from hybridops.rehearsal.source import MonthlySource


def _months(path: Path) -> dict[str, int]:
    frame = pd.read_csv(path, usecols=["year", "month"])
    keys = frame["year"].astype(str) + "-" + frame["month"].astype(int).map("{:02d}".format)
    return keys.value_counts().sort_index().to_dict()


def test_each_drop_adds_one_month_and_keeps_the_earlier_ones_byte_for_byte(tmp_path: Path) -> None:
    source = MonthlySource(tmp_path / "watched", every=50)
    source.drop("2013-01")
    first = (tmp_path / "watched" / "flights.csv").read_text()
    assert sorted(p.name for p in (tmp_path / "watched").iterdir()) == [
        "airlines.csv", "airports.csv", "flights.csv", "planes.csv", "weather.csv",
    ]  # fmt: skip
    source.drop("2013-02")
    flights, weather = tmp_path / "watched" / "flights.csv", tmp_path / "watched" / "weather.csv"
    assert list(_months(flights)) == ["2013-01", "2013-02"]
    assert list(_months(weather)) == ["2013-01", "2013-02"]
    assert flights.read_text().startswith(first)  # January unchanged: only February is new
    assert _months(flights)["2013-02"] == len(source.flights_of("2013-02"))
    # every 50th flight of the packaged year (336,776 flights)
    assert sum(len(source.flights_of(m)) for m in source.months) == -(-336_776 // 50)
    # no temporary file is left beside them
    assert not [p for p in (tmp_path / "watched").iterdir() if p.name.startswith(".")]


def test_missing_values_are_written_as_the_source_spells_them(tmp_path: Path) -> None:
    source = MonthlySource(tmp_path, every=1)
    source.drop("2013-01")
    text = (tmp_path / "weather.csv").read_text()
    assert ",NA," in text and "nan" not in text


def test_a_month_outside_the_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no month 2014-01"):
        MonthlySource(tmp_path, every=100).drop("2014-01")


def test_concurrency_from_run_records_and_lock_messages() -> None:
    def run(started: float, ended: float | None) -> dagster_api.Run:
        return dagster_api.Run("r", "j", "SUCCESS", started, started, ended, {})

    assert dagster_api.max_overlap([run(0, 10), run(5, 15), run(12, 20), run(14, None)]) == 3
    assert dagster_api.LOCK_ERROR.search('IO Error: Could not set lock on file "/data/warehouse.duckdb"')
    assert dagster_api.LOCK_ERROR.search("the warehouse stayed locked by another process for 30 s")
    assert not dagster_api.LOCK_ERROR.search("blocking check passed; unlocked nothing")
