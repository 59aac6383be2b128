import hashlib
import os
import stat
from pathlib import Path

from hybridops.ingest.landing import land_file, landing_record, latest_landing, record_landing
from hybridops.warehouse.db import connect


def test_land_copies_bytes_content_addressed_and_read_only(tmp_path: Path) -> None:
    src = tmp_path / "weather.csv"
    src.write_bytes(b"origin,year\nEWR,2013\n")
    landed = land_file(src, "weather", tmp_path / "landing")
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert landed.sha256 == sha
    assert landed.landed_path == tmp_path / "landing" / "weather" / sha / "weather.csv"
    assert landed.landed_path.read_bytes() == src.read_bytes()
    assert landed.bytes == len(src.read_bytes())
    mode = landed.landed_path.stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_landing_twice_is_idempotent(tmp_path: Path) -> None:
    src = tmp_path / "airlines.csv"
    src.write_text("carrier,name\nUA,United\n")
    first = land_file(src, "airlines", tmp_path / "landing")
    mtime = os.stat(first.landed_path).st_mtime_ns
    second = land_file(src, "airlines", tmp_path / "landing")
    assert first == second
    assert os.stat(second.landed_path).st_mtime_ns == mtime
    assert [p for p in (tmp_path / "landing").rglob("*") if p.is_file()] == [first.landed_path]
    # Changed bytes land next to the old copy; the old copy is kept.
    src.write_text("carrier,name\nUA,United Air Lines\n")
    third = land_file(src, "airlines", tmp_path / "landing")
    assert third.sha256 != first.sha256
    assert first.landed_path.exists() and third.landed_path.exists()


def test_landing_record(tmp_path: Path) -> None:
    src = tmp_path / "planes.csv"
    src.write_text("tailnum\nN1\n")
    frame = landing_record(land_file(src, "planes", tmp_path / "landing"), "run-1")
    assert list(frame.columns) == [
        "table_name",
        "source_path",
        "landed_path",
        "sha256",
        "bytes",
        "landed_at",
        "run_id",
    ]
    assert frame.iloc[0]["run_id"] == "run-1" and frame.iloc[0]["bytes"] == 11


def test_latest_landing_is_the_most_recently_landed_file_of_the_table(tmp_path: Path) -> None:
    src = tmp_path / "weather.csv"
    db = tmp_path / "warehouse.duckdb"
    with connect(db) as con:
        assert latest_landing(con, "weather") is None  # nothing landed yet
        src.write_text("origin,temp\nEWR,1.0\n")
        first = land_file(src, "weather", tmp_path / "landing")
        record_landing(con, first, "run-1")
        src.write_text("origin,temp\nEWR,2.0\n")
        second = land_file(src, "weather", tmp_path / "landing")
        record_landing(con, second, "run-2")
        record_landing(con, second, "run-2")  # landing the same bytes again keeps one row
        assert con.execute("select count(*) from landing_files").fetchall() == [(2,)]
        found = latest_landing(con, "weather")
    assert found == second and found.landed_path.read_text() == "origin,temp\nEWR,2.0\n"
