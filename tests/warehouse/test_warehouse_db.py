"""Warehouse connections: another process's lock is waited out, then reported in one line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from hybridops.errors import HybridopsError
from hybridops.warehouse.db import connect, kept_open, replace_rows, transaction

# Holds a read-only connection (what an exporter scrape does) for the given seconds.
_HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with connect(path) as con:
        con.execute("create table t as select 1 as x")
    return path


def test_a_write_waits_for_a_reader_in_another_process(warehouse: Path) -> None:
    holder = _hold(warehouse, 1.0)
    try:
        with pytest.raises(duckdb.IOException):  # what the pipeline hit before it waited
            duckdb.connect(str(warehouse)).close()
        with connect(warehouse, lock_wait_seconds=20) as con:
            con.execute("insert into t values (2)")
            assert con.execute("select count(*) from t").fetchone() == (2,)
    finally:
        holder.wait(timeout=20)


def test_a_lock_held_too_long_is_one_clear_error(warehouse: Path) -> None:
    holder = _hold(warehouse, 10.0)
    try:
        started = time.monotonic()
        with (
            pytest.raises(HybridopsError, match="locked by another process") as info,
            connect(warehouse, lock_wait_seconds=0.5),
        ):
            pass
        assert str(warehouse) in str(info.value)
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()


def test_kept_open_hands_out_cursors_on_one_database_and_releases_it(warehouse: Path) -> None:
    with kept_open(warehouse):
        with connect(warehouse) as con:
            con.execute("insert into t values (2)")
        with kept_open(warehouse), connect(warehouse, read_only=True) as con:  # nested: the same database
            assert con.execute("select count(*) from t").fetchall() == [(2,)]
        # Another process cannot open the file while it is kept open here...
        reader = subprocess.run(
            [
                sys.executable,
                "-c",
                "import duckdb,sys; duckdb.connect(sys.argv[1], read_only=True)",
                str(warehouse),
            ],
            capture_output=True,
            text=True,
        )
        assert reader.returncode != 0 and "lock" in reader.stderr.lower()
    # ...and can once the block ends (with what was written inside it).
    holder = _hold(warehouse, 0.1)
    holder.wait(timeout=30)
    with connect(warehouse, read_only=True) as con:
        assert con.execute("select sum(x) from t").fetchall() == [(3,)]


def test_replace_rows_replaces_several_partitions_at_once(warehouse: Path) -> None:
    with connect(warehouse) as con:
        months = pd.DataFrame({"month_key": ["2013-01", "2013-02", "2013-03"], "n": [1, 2, 3]})
        replace_rows(con, "m", months)
        replace_rows(
            con,
            "m",
            pd.DataFrame({"month_key": ["2013-01"], "n": [10]}),
            {"month_key": ["2013-01", "2013-02"]},
        )
        rows = con.execute("select month_key, n from m order by 1").fetchall()
    assert rows == [("2013-01", 10), ("2013-03", 3)]


def test_a_failed_replace_leaves_the_rows_it_would_have_replaced(tmp_path: Path) -> None:
    with connect(tmp_path / "w.duckdb") as con:
        replace_rows(con, "t", pd.DataFrame({"month_key": ["2013-01", "2013-02"], "n": [1, 2]}))
        bad = pd.DataFrame({"month_key": ["2013-01"], "n": ["not a number"]})
        with pytest.raises(duckdb.ConversionException):
            replace_rows(con, "t", bad, {"month_key": "2013-01"})
        # The delete of January was rolled back with the failed insert.
        assert con.execute("select month_key, n from t order by 1").fetchall() == [
            ("2013-01", 1),
            ("2013-02", 2),
        ]
        with transaction(con):
            con.execute("delete from t where month_key = '2013-02'")
        assert con.execute("select count(*) from t").fetchone() == (1,)
