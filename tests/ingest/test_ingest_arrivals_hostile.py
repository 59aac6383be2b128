"""Source files that are not whole when the sensor looks: skipped by name, never requested, others read.

Before, an empty file failed the whole look (no other file was read, every tick), and a file still being
written was read as it stood: its partial last month was requested as if it had arrived.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from hybridops.ingest.arrivals import look

HEADER = "year,month,day,dep_time,carrier,flight,origin\n"
ROW = "2013,1,{day},517,UA,1545,EWR\n"


def _weather(path: Path) -> None:
    path.write_text("origin,year,month,day,hour,temp\nEWR,2013,1,1,1,39.0\n")


def test_an_empty_file_is_skipped_by_name_and_the_others_are_read(tmp_path: Path):
    (tmp_path / "flights.csv").write_bytes(b"")
    _weather(tmp_path / "weather.csv")
    arrivals = look(tmp_path, {})
    assert arrivals.months == {"2013-01": {"weather"}}
    assert arrivals.skipped == [
        f"{tmp_path / 'flights.csv'}: empty (still being created?); read again at the next look"
    ]
    assert "flights" not in arrivals.state  # not remembered: read when it has content
    (tmp_path / "flights.csv").write_text(HEADER + ROW.format(day=1))
    later = look(tmp_path, arrivals.state)
    assert later.months == {"2013-01": {"flights"}} and later.skipped == []


def test_a_file_still_being_written_is_not_read_as_arrived(tmp_path: Path):
    path = tmp_path / "flights.csv"
    path.write_text(HEADER + "".join(ROW.format(day=1 + i % 28) for i in range(200_000)))
    stop = threading.Event()

    def writer() -> None:  # a copy in progress: the file grows while the sensor reads it
        with path.open("a") as handle:
            while not stop.is_set():
                handle.write(ROW.format(day=2))
                handle.flush()
                time.sleep(0.0005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        arrivals = look(tmp_path, {})
    finally:
        stop.set()
        thread.join()
    assert arrivals.empty and "flights" not in arrivals.state
    (reason,) = arrivals.skipped
    assert reason.startswith(f"{path}: changed while it was read (")
    assert "still being written" in reason
    assert look(tmp_path, arrivals.state).months == {"2013-01": {"flights"}}  # whole now: read


def test_a_symlink_loop_and_ten_thousand_other_files_are_ignored(tmp_path: Path):
    (tmp_path / "flights.csv").symlink_to(tmp_path / "flights.csv")
    for index in range(10_000):
        (tmp_path / f"noise-{index}.csv").write_text("x\n")
    _weather(tmp_path / "weather.csv")
    started = time.perf_counter()
    arrivals = look(tmp_path, {})
    assert arrivals.months == {"2013-01": {"weather"}} and arrivals.skipped == []
    assert time.perf_counter() - started < 2.0
