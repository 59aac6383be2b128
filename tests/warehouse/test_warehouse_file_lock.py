"""Processes taking turns on one DuckDB warehouse file lose no committed row (hybridops.warehouse.file_lock)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from hybridops.errors import HybridopsError
from hybridops.warehouse import file_lock
from hybridops.warehouse.db import append_rows, connect

# One writer process: waits for the start file, then commits `n` one-row appends, one session each
# (what processes recording alias events or asset steps do).
_WRITER = """
import sys, time
from pathlib import Path
import pyarrow as pa
from hybridops.warehouse.db import append_rows, connect
db, worker, n, go = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
Path(str(go) + f".ready{worker}").touch()
while not go.exists():
    time.sleep(0.005)
for i in range(n):
    with connect(db, lock_wait_seconds=300) as con:
        append_rows(con, "events", pa.table({"worker": [worker], "i": [i]}))
"""

# Holds the warehouse's lock (no DuckDB open) until killed.
_LOCKER = """
import sys, time
from pathlib import Path
from hybridops.warehouse import file_lock
with file_lock.held(Path(sys.argv[1]), True, 10):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow  # sixteen processes taking turns: the slow group
def test_processes_taking_turns_lose_no_committed_row(tmp_path: Path) -> None:
    """Without the lock, 20 such writers of 15 rows each ended with 298 and 299 rows in two of three runs."""
    db, go = tmp_path / "warehouse.duckdb", tmp_path / "go"
    workers, rows = 16, 12
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(db), str(w), str(rows), str(go)])
        for w in range(workers)
    ]
    try:
        deadline = time.monotonic() + 120
        while sum(Path(f"{go}.ready{w}").exists() for w in range(workers)) < workers:
            assert time.monotonic() < deadline, "writers did not start"
            time.sleep(0.05)
        go.touch()
        assert [p.wait(timeout=300) for p in procs] == [0] * workers
    finally:
        for p in procs:
            p.kill()
    with connect(db, read_only=True) as con:
        found = con.execute("select count(*), count(distinct (worker, i)) from events").fetchall()
    assert found == [(workers * rows, workers * rows)]


def test_a_session_waits_for_the_lock_of_another_process_then_reports_it(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    with connect(db) as con:
        con.execute("create table t as select 1 as x")
    locker = subprocess.Popen([sys.executable, "-c", _LOCKER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "held"
        for read_only in (False, True):  # a reader waits for a writer's lock too
            with (
                pytest.raises(HybridopsError, match="locked by another process") as info,
                connect(db, read_only=read_only, lock_wait_seconds=0.3),
            ):
                pass
            assert str(db) in str(info.value)
        released = threading.Timer(0.5, locker.kill)
        released.start()
        started = time.monotonic()
        with connect(db, lock_wait_seconds=30) as con:  # the kernel frees a dead holder's lock
            assert con.execute("select x from t").fetchall() == [(1,)]
        assert time.monotonic() - started >= 0.4
    finally:
        locker.kill()
        locker.wait()


def test_sessions_of_one_process_share_the_lock(tmp_path: Path) -> None:
    """DuckDB shares one database between a process's connections: nested and concurrent sessions of one
    process do not wait for each other, and the lock is released when the last one ends."""
    db = tmp_path / "warehouse.duckdb"
    with connect(db) as outer:
        outer.execute("create table t (x integer)")
        with connect(db) as inner:
            append_rows(inner, "t", pa.table({"x": [1]}))
        errors: list[BaseException] = []

        def other_thread() -> None:
            try:
                with connect(db, lock_wait_seconds=5) as con:
                    con.execute("insert into t values (2)")
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(20)
        assert not errors and not thread.is_alive()
        assert outer.execute("select sum(x) from t").fetchall() == [(3,)]
    assert not file_lock._holds  # released with the last session
    other = subprocess.run(
        [sys.executable, "-c", _LOCKER.replace("time.sleep(60)", "pass"), str(db)],
        capture_output=True,
        text=True,
    )
    assert other.returncode == 0 and other.stdout.strip() == "held", other.stderr


def test_a_read_only_session_writes_no_lock_file(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(db)).close()  # a file no hybridops writer has opened yet
    with connect(db, read_only=True) as con:
        assert con.execute("select 1").fetchall() == [(1,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


def test_a_read_only_session_on_a_missing_folder_takes_no_lock(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "warehouse.duckdb"
    with (
        pytest.raises(Exception, match=r"(?i)no such file|cannot open|does not exist"),
        connect(missing, read_only=True),
    ):
        pass
    assert not (tmp_path / "nowhere").exists()
