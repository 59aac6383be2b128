"""What arrived in a source folder: months and digests, read only when a file's stat changed."""

from __future__ import annotations

import os
from pathlib import Path

from hybridops.ingest.arrivals import decode_state, look, month_digests
from hybridops.ingest.sources import packaged_source_dir

HEADER = "year,month,day,dep_time,carrier,flight,origin\n"


def _flights(path: Path, rows: list[str]) -> None:
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows))


def test_the_packaged_zip_holds_the_twelve_months(tmp_path: Path):
    arrivals = look(packaged_source_dir(), {})
    assert sorted(arrivals.months) == [f"2013-{m:02d}" for m in range(1, 13)]
    assert arrivals.months["2013-01"] == {"flights", "weather"}
    assert arrivals.tables == {"planes", "airlines", "airports"}
    again = look(packaged_source_dir(), decode_state(arrivals.cursor()))
    assert again.empty and again.files_read == []


def test_a_grown_file_reports_its_new_month_and_a_changed_month(tmp_path: Path):
    path = tmp_path / "flights.csv"
    _flights(path, ["2013,1,1,517,UA,1545,EWR", "2013,1,2,533,AA,1141,LGA"])
    first = look(tmp_path, {})
    assert set(first.months) == {"2013-01"}
    _flights(path, ["2013,1,2,533,AA,1141,LGA", "2013,1,1,517,UA,1545,EWR", "2013,2,1,600,B6,1,JFK"])
    os.utime(path, ns=(1, 1))  # a different stat, whatever the clock's resolution
    grown = look(tmp_path, first.state)
    assert set(grown.months) == {"2013-02"}  # row order does not matter
    _flights(path, ["2013,1,2,533,AA,1141,LGA", "2013,1,1,999,UA,1545,EWR", "2013,2,1,600,B6,1,JFK"])
    os.utime(path, ns=(2, 2))
    assert set(look(tmp_path, grown.state).months) == {"2013-01"}


def test_rows_without_a_month_are_left_to_the_quality_step(tmp_path: Path):
    path = tmp_path / "flights.csv"
    _flights(path, ["2013,1,1,517,UA,1545,EWR", "x,y,1,517,UA,1545,EWR", "2013,13,1,1,UA,1,EWR"])
    assert set(month_digests(path)) == {"2013-01"}


def test_an_unreadable_cursor_is_a_first_look():
    assert decode_state("not json") == {} and decode_state(None) == {}
