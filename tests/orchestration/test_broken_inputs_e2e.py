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

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a pipeline run per defect: the slow group CI runs

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


# Row-level defects and the rule that quarantines each (cycled over the broken rows).
DEFECTS = ("type", "range", "control_bytes", "field_count")


def _break(lines: list[str], count: int) -> tuple[str, dict[int, str]]:
    """The file with ``count`` data rows, spread over the month, each broken by one of ``DEFECTS``;
    returns the text and {source line: expected rule}. No row is added or removed: rows read stay the same."""
    header = lines[0].split(",")
    broken = list(lines)
    expected: dict[int, str] = {}
    step = (len(lines) - 1) / count
    for k in range(count):
        i = 1 + int(k * step)
        fields = broken[i].split(",")
        rule = DEFECTS[k % len(DEFECTS)]
        if rule == "type":
            fields[header.index("distance")] = "far"
        elif rule == "range":
            fields[header.index("distance")] = "-5"
        elif rule == "control_bytes":
            fields[header.index("flight")] += "\x00"
        else:  # a short record mid-file
            fields = fields[:-3]
        broken[i] = ",".join(fields)
        expected[i + 1] = rule  # source lines count the header as line 1
    return "\n".join(broken) + "\n", expected


def _limit_rows(rows: int) -> int:
    """Most bad rows of ``rows`` that the default bad-row limit still lets through."""
    limit = Settings().quality.max_bad_row_ratio
    allowed = int(limit * rows)
    assert allowed / rows <= limit < (allowed + 1) / rows
    return allowed


def test_too_many_bad_rows_block_the_batch(tmp_path, january_flights):
    lines = january_flights.splitlines()
    # One row over the limit (2% by default) of rows of four defects: the batch is blocked.
    count = _limit_rows(len(lines) - 1) + 1
    text, expected = _break(lines, count)
    src = _source_dir(tmp_path, text)
    result, summary = _run(tmp_path, src)
    assert summary["status"] == "blocked"
    assert "(list them: hybridops quarantine --month 2013-01)" in result.stdout
    ratio = [c for c in summary["checks"] if c["asset"] == "flights" and c["name"] == "bad_row_ratio"]
    assert ratio and not ratio[0]["passed"]
    assert f"flights.csv: {count} of {len(lines) - 1} rows quarantined" in " ".join(summary["problems"])
    assert summary["rows_quarantined"] == count
    with connect(Settings(home=tmp_path / "home").warehouse_db, read_only=True) as con:
        quarantine = read_frame(con, "select * from quarantine where table_name = 'flights'")
    assert sorted(quarantine["source_line"].astype(int)) == sorted(expected)
    for line, rule in zip(quarantine["source_line"].astype(int), quarantine["check_name"], strict=True):
        assert expected[line] in rule.split(","), (line, rule)
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
    distance = [line for line, rule in expected.items() if rule in ("type", "range")]
    assert sorted(r["source_line"] for r in rows) == sorted(distance)
    assert {r["run_id"] for r in rows} == {summary["run_ids"][-1]}
    assert all(r["source_file"].endswith("flights.csv") for r in rows)


def test_a_few_bad_rows_are_quarantined_and_the_rest_continues(tmp_path, january_flights):
    lines = january_flights.splitlines()
    # As many bad rows of four defects as the limit lets through (one more blocks: the test above).
    count = _limit_rows(len(lines) - 1)
    text, expected = _break(lines, count)
    src = _source_dir(tmp_path, text)
    result, summary = _run(tmp_path, src)
    assert result.returncode == 0, result.stdout
    assert summary["status"] == "success"
    assert summary["rows_quarantined"] == count
    ratio = _check(summary, "flights", "bad_row_ratio")
    assert (
        ratio["passed"] and f"flights.csv: {count} of {len(lines) - 1} rows quarantined" in ratio["message"]
    )
    assert _check(summary, "flights", "rows_reconciled")["passed"]
    home = tmp_path / "home"
    with connect(Settings(home=home).warehouse_db, read_only=True) as con:
        quarantine = read_frame(con, "select * from quarantine where table_name = 'flights'")
        valid_lines = read_frame(con, "select _source_line from flights")["_source_line"].astype(int)
    assert sorted(quarantine["source_line"].astype(int)) == sorted(expected)
    for row in quarantine.itertuples():
        assert expected[int(row.source_line)] in row.check_name.split(","), (row.source_line, row.check_name)
        assert row.source_file.endswith("flights.csv") and row.reason and row.month_key == "2013-01"
    # the rest went on: every other row is valid and reached the warehouse's fact table and the features
    assert sorted(valid_lines) == sorted(set(range(2, len(lines) + 1)) - set(expected))
    assert _fct_rows(home) == len(lines) - 1 - count
    assert summary["warehouse_rows"] == len(lines) - 1 - count
    assert "features" in summary["stage_seconds"]


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
    # Values that made the whole run fail without naming file or row (docs/reliability.md, probes).
    far = lines[4].split(",")
    far[header.index("time_hour")] = "3000-01-01T10:00:00Z"  # past what a nanosecond timestamp holds
    huge = lines[5].split(",")
    huge[header.index("distance")] = "99999999999999999999"  # past int64
    text = "\n".join([lines[0], ",".join(stray), damaged, ",".join(far), ",".join(huge), *lines[6:], cut])
    src = _source_dir(tmp_path, text)
    result, summary = _run(tmp_path, src)
    assert result.returncode == 0, result.stdout
    with connect(Settings(home=tmp_path / "home").warehouse_db, read_only=True) as con:
        quarantine = read_frame(con, "select * from quarantine where table_name = 'flights'")
        valid = int(read_frame(con, "select count(*) as n from flights")["n"].iloc[0])
    by_line = quarantine.set_index(quarantine["source_line"].astype(int))
    assert by_line.loc[2, "month_key"] == "out-of-range" and "month 2014-05" in by_line.loc[2, "reason"]
    assert "control_bytes" in by_line.loc[3, "check_name"] and "0x00 in month" in by_line.loc[3, "reason"]
    assert (
        by_line.loc[4, "check_name"] == "type"
        and "time_hour='3000-01-01T10:00:00Z'" in by_line.loc[4, "reason"]
    )
    assert (
        by_line.loc[5, "check_name"] == "type"
        and "distance='99999999999999999999'" in by_line.loc[5, "reason"]
    )
    last = len(lines)  # header + rows 1..n-1 kept (rows 1-5 replaced/damaged) + the cut line
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


@pytest.mark.parametrize("defect", ["missing", "unreadable"])
def test_a_missing_or_unreadable_file_is_a_failed_blocking_check(tmp_path, january_flights, defect):
    src = _source_dir(tmp_path, january_flights)
    (src / "weather.csv").unlink()
    if defect == "unreadable":
        # Reading it fails with an I/O error whoever runs the test (root ignores permission bits). Before,
        # the run failed with "raw_weather: OSError: [Errno 5] Input/output error", no file named.
        (src / "weather.csv").symlink_to("/proc/self/mem")
    result, summary = _run(tmp_path, src)
    assert result.returncode == 1 and summary["status"] == "blocked"
    check = _check(summary, "weather", "file_readable_and_schema_valid")
    assert not check["passed"]
    expected = {
        "missing": f"no weather file in {src}",
        "unreadable": f"cannot read {src / 'weather.csv'} (Input/output error)",
    }
    assert expected[defect] in " ".join(summary["problems"])
