"""Broken source files through the real CLI and Dagster: blocked batches say which file and why.

Each case copies the real source files into a folder, breaks one, and runs ``hybridops run`` on January
with ``HYBRIDOPS_SOURCE_DIR`` pointing there. January's flights are thinned to a few thousand rows to keep the
runs short; the defect is what matters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hybridops.ingest.landing import sha256_of
from hybridops.ingest.sources import packaged_source_dir
from hybridops.settings import Settings
from hybridops.warehouse.db import connect, read_frame, table_exists

pytestmark = pytest.mark.e2e

EXE = str(Path(sys.executable).with_name("hybridops"))


@pytest.fixture(scope="module")
def january_flights() -> str:
    flights = pd.read_csv(packaged_source_dir() / "flights.csv.zip", dtype=str, keep_default_na=False)
    # Every 9th row: about 3,000 rows over every day of the month (the daily-flights check sees each day).
    return flights[flights["month"] == "1"].iloc[::9].to_csv(index=False)


def _source_dir(tmp_path: Path, flights_csv: str) -> Path:
    src = tmp_path / "source"
    src.mkdir()
    for name in ("weather.csv", "planes.csv", "airlines.csv", "airports.csv"):
        shutil.copy(packaged_source_dir() / name, src / name)
    (src / "flights.csv").write_text(flights_csv)
    return src


def _run(tmp_path: Path, src: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    home = tmp_path / "home"
    env = {**os.environ, "HYBRIDOPS_HOME": str(home), "HYBRIDOPS_SOURCE_DIR": str(src), "COLUMNS": "200"}
    out = tmp_path / "summary.json"
    result = subprocess.run(
        [EXE, "run", "--months", "2013-01", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert "Traceback" not in result.stderr + result.stdout
    return result, json.loads(out.read_text())


def _landed_copy_is_identical(home: Path, original: Path) -> bool:
    copies = list((home / "landing" / "flights").rglob(original.name))
    return len(copies) == 1 and sha256_of(copies[0]) == sha256_of(original)


def _fct_rows(home: Path) -> int:
    with connect(Settings(home=home).warehouse_db, read_only=True) as con:
        if not table_exists(con, "fct_flights"):
            return 0
        return int(read_frame(con, "select count(*) as n from fct_flights")["n"].iloc[0])


def test_renamed_column_blocks_the_batch_and_names_the_file(tmp_path, january_flights):
    src = _source_dir(tmp_path, january_flights.replace(",dep_delay,", ",departure_delay,", 1))
    result, summary = _run(tmp_path, src)
    assert result.returncode == 1
    assert summary["status"] == "blocked"
    problem = " ".join(summary["problems"])
    assert "flights.csv" in problem and "dep_delay" in problem
    assert "file_readable_and_schema_valid" in problem
    assert _fct_rows(tmp_path / "home") == 0, "downstream of a blocked batch must not run"
    assert _landed_copy_is_identical(tmp_path / "home", src / "flights.csv")
    # The terminal says first what blocked, which file and what to do; Dagster's event log is in a file.
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    progress = [line for line in lines if "monthly_partition 2013-01" in line and "--months" not in line]
    assert progress and "■ blocked: monthly_partition 2013-01" in progress[0], result.stdout
    assert "✓ monthly_partition" not in result.stdout
    first = next(i for i, line in enumerate(lines) if line.startswith("BLOCKED"))
    assert "flights.csv" in lines[first + 1] and "dep_delay" in lines[first + 1]
    assert any("what to do:" in line for line in lines[first : first + 8])
    assert first < min(i for i, line in enumerate(lines) if "rows ingested" in line)
    output = result.stdout + result.stderr
    assert "dagster - ERROR" not in output and "Stack Trace" not in output
    log = Path(summary["log_path"])
    assert log.parent == tmp_path / "home" / "logs" and str(log) in result.stdout
    assert "STEP_FAILURE" in log.read_text() and "DagsterAssetCheckFailedError" in log.read_text()
    # checks that never ran are not counted as failed
    skipped = [c for c in summary["checks"] if not c["evaluated"]]
    failed = [c for c in summary["checks"] if c["evaluated"] and not c["passed"]]
    assert [c["name"] for c in failed] == ["file_readable_and_schema_valid"]
    assert skipped and all(c["message"].startswith("not evaluated") for c in skipped)
    assert f"1 failed / {len(skipped)} not evaluated" in result.stdout


def test_too_many_bad_rows_block_the_batch(tmp_path, january_flights):
    lines = january_flights.splitlines()
    # 5% of the rows get a non-numeric distance: above the 2% threshold.
    broken = [line.replace(",UA,", ",UA,") for line in lines]
    for i in range(1, len(lines), 20):
        fields = broken[i].split(",")
        fields[15] = "far"
        broken[i] = ",".join(fields)
    src = _source_dir(tmp_path, "\n".join(broken) + "\n")
    result, summary = _run(tmp_path, src)
    assert summary["status"] == "blocked"
    assert "(list them: hybridops quarantine --month 2013-01)" in result.stdout
    ratio = [c for c in summary["checks"] if c["asset"] == "flights" and c["name"] == "bad_row_ratio"]
    assert ratio and not ratio[0]["passed"]
    assert summary["rows_quarantined"] == len(range(1, len(lines), 20))
    with connect(Settings(home=tmp_path / "home").warehouse_db, read_only=True) as con:
        quarantine = read_frame(con, "select * from quarantine where table_name = 'flights'")
    assert set(quarantine["check_name"]) == {"type"}
    assert quarantine["reason"].str.contains("distance").all()
    assert sorted(quarantine["source_line"].astype(int)) == [i + 1 for i in range(1, len(lines), 20)]
    assert _fct_rows(tmp_path / "home") == 0
    # `hybridops quarantine` lists them (the summary names the command) and exports them
    env = {**os.environ, "HYBRIDOPS_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    exported = subprocess.run(
        [
            EXE,
            "quarantine",
            "--table",
            "flights",
            "--month",
            "2013-01",
            "--reason",
            "distance",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    rows = json.loads(exported.stdout)
    assert sorted(r["source_line"] for r in rows) == [i + 1 for i in range(1, len(lines), 20)]
    assert {r["run_id"] for r in rows} == {summary["run_ids"][-1]}
    assert all(r["source_file"].endswith("flights.csv") for r in rows)


def test_a_few_bad_rows_are_quarantined_and_the_rest_continues(tmp_path, january_flights):
    lines = january_flights.splitlines()
    duplicate = lines[1]
    src = _source_dir(tmp_path, "\n".join([*lines, duplicate]) + "\n")
    result, summary = _run(tmp_path, src)
    assert result.returncode == 0, result.stdout
    assert summary["status"] == "success"
    assert summary["rows_quarantined"] == 1
    assert _fct_rows(tmp_path / "home") == len(lines) - 1


def _check(summary: dict, asset: str, name: str) -> dict:
    found = [c for c in summary["checks"] if c["asset"] == asset and c["name"] == name]
    assert found, f"no {asset}.{name} in {[(c['asset'], c['name']) for c in summary['checks']]}"
    return found[0]


def test_every_row_is_accounted_for_cut_files_control_bytes_and_strays(tmp_path, january_flights):
    lines = january_flights.splitlines()
    header = lines[0].split(",")
    stray = lines[1].split(",")
    stray[header.index("year")], stray[header.index("month")] = "2014", "5"  # a month no partition loads
    stray[header.index("time_hour")] = "2014-05-01T09:00:00Z"
    damaged = lines[2].replace(",", ",\x00", 1)  # a NUL byte inside the month value
    cut = lines[3][: len(lines[3]) // 2]  # the file ends mid-record, no final line break
    text = "\n".join([lines[0], ",".join(stray), damaged, *lines[4:], cut])
    src = _source_dir(tmp_path, text)
    result, summary = _run(tmp_path, src)
    assert result.returncode == 0, result.stdout
    with connect(Settings(home=tmp_path / "home").warehouse_db, read_only=True) as con:
        quarantine = read_frame(con, "select * from quarantine where table_name = 'flights'")
        valid = int(read_frame(con, "select count(*) as n from flights")["n"].iloc[0])
    by_line = quarantine.set_index(quarantine["source_line"].astype(int))
    assert by_line.loc[2, "month_key"] == "out-of-range" and "month 2014-05" in by_line.loc[2, "reason"]
    assert "control_bytes" in by_line.loc[3, "check_name"] and "0x00 in month" in by_line.loc[3, "reason"]
    last = len(lines)  # header + rows 1..n-1 kept (rows 1-3 replaced/damaged) + the cut line
    assert by_line.loc[last, "check_name"] == "truncated" and "flights.csv" in by_line.loc[last, "reason"]
    assert valid + len(quarantine) == len(lines) - 1  # every record of the file is somewhere
    reconciled = _check(summary, "flights", "rows_reconciled")
    assert reconciled["passed"]


def test_an_airports_missing_month_of_weather_blocks_the_month(tmp_path, january_flights):
    src = _source_dir(tmp_path, january_flights)
    weather = pd.read_csv(src / "weather.csv", dtype=str, keep_default_na=False)
    keep = ~((weather["origin"] == "LGA") & (weather["month"] == "1"))
    weather[keep].to_csv(src / "weather.csv", index=False)
    _, summary = _run(tmp_path, src)
    assert summary["status"] == "blocked"
    check = _check(summary, "weather", "weather_hours_complete")
    assert not check["passed"]
    problem = " ".join(summary["problems"])
    assert "weather.csv: LGA has 0 of 744 hours of weather in 2013-01" in problem
    assert _fct_rows(tmp_path / "home") == 0


def test_a_missing_file_is_a_failed_blocking_check(tmp_path, january_flights):
    src = _source_dir(tmp_path, january_flights)
    (src / "weather.csv").unlink()
    result, summary = _run(tmp_path, src)
    assert result.returncode == 1 and summary["status"] == "blocked"
    check = _check(summary, "weather", "file_readable_and_schema_valid")
    assert not check["passed"]
    assert f"no weather file in {src}" in " ".join(summary["problems"])
