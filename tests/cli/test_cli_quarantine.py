"""`hybridops quarantine` lists and exports the quarantine table; a blocked run's summary speaks first."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from hybridops.cli import render
from hybridops.orchestration.summary import CheckSummary, RunSummary
from hybridops.quality.quarantine import QUARANTINE_COLUMNS, write_quarantine
from hybridops.settings import Settings
from hybridops.warehouse.db import connect

RUN_A, RUN_B = "a1b2c3d4-0000-4000-8000-000000000001", "f9e8d7c6-0000-4000-8000-000000000002"


def _rows(table: str, month: str, run: str, rows: list[tuple[str, int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "table_name": table,
                "month_key": month,
                "source_file": source,
                "source_line": line,
                "check_name": check,
                "reason": reason,
                "record_json": json.dumps({"line": line}),
                "run_id": run,
                "quarantined_at": pd.Timestamp("2026-12-02 04:00:00"),
            }
            for source, line, check, reason in rows
        ],
        columns=list(QUARANTINE_COLUMNS),
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("HYBRIDOPS_HOME", str(home))
    with connect(Settings(home=home).warehouse_db) as con:
        write_quarantine(
            con,
            "flights",
            "2013-01",
            _rows(
                "flights",
                "2013-01",
                RUN_A,
                [
                    ("landing/flights/2013-01/flights.csv", 12, "type", "distance: 'far' is not a number"),
                    ("landing/flights/2013-01/flights.csv", 40, "duplicate_key", "duplicate of line 2"),
                ],
            ),
        )
        write_quarantine(
            con,
            "flights",
            "2013-02",
            _rows(
                "flights",
                "2013-02",
                RUN_B,
                [("landing/flights/2013-02/flights.csv", 7, "type", "distance: 'x'")],
            ),
        )
        write_quarantine(
            con,
            "weather",
            "2013-01",
            _rows(
                "weather", "2013-01", RUN_A, [("landing/weather/weather.csv", 3, "range", "wind_speed 1048")]
            ),
        )
    return home


def _main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    from hybridops.cli.app import main

    monkeypatch.setattr(sys, "argv", ["hybridops", *args])
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def test_quarantine_lists_rows_with_file_line_reason_and_run(home, monkeypatch, capsys) -> None:
    code, out, _ = _main(monkeypatch, capsys, "quarantine")
    assert code == 0, out
    assert f"quarantined rows (4; {Settings(home=home).warehouse_db}, table quarantine)" in out
    for needle in ("landing/flights/2013-01/flights.csv", "12", "distance: 'far' is not a number", RUN_A):
        assert needle in out

    code, out, _ = _main(monkeypatch, capsys, "quarantine", "--table", "flights", "--month", "2013-01")
    assert code == 0 and "quarantined rows (2;" in out and "weather" not in out.split("\n", 2)[-1]

    code, out, _ = _main(monkeypatch, capsys, "quarantine", "--reason", "DISTANCE", "--run", RUN_A[:8])
    assert code == 0 and "quarantined rows (1;" in out and "duplicate of line 2" not in out


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_quarantine_exports_csv_and_json_with_the_records(home, tmp_path, monkeypatch, capsys, fmt) -> None:
    target = tmp_path / f"out.{fmt}"
    code, _, err = _main(
        monkeypatch, capsys, "quarantine", "--table", "flights", "--format", fmt, "--out", str(target)
    )
    assert code == 0 and "3 quarantined rows written to" in err
    frame = pd.read_csv(target) if fmt == "csv" else pd.DataFrame(json.loads(target.read_text()))
    assert list(frame.columns) == list(QUARANTINE_COLUMNS)
    assert sorted(zip(frame["month_key"], frame["source_line"].astype(int), strict=True)) == [
        ("2013-01", 12),
        ("2013-01", 40),
        ("2013-02", 7),
    ]
    assert set(frame["run_id"]) == {RUN_A, RUN_B}

    code, out, _ = _main(monkeypatch, capsys, "quarantine", "--run", RUN_B, "--format", fmt)
    assert code == 0 and RUN_B in out and RUN_A not in out


def test_quarantine_without_a_warehouse_or_with_a_bad_format_is_one_line(
    tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("HYBRIDOPS_HOME", str(tmp_path / "empty"))
    code, out, err = _main(monkeypatch, capsys, "quarantine")
    assert out == ""
    assert (
        code == 2 and err.count("\n") == 1 and "run `hybridops run` first" in err and "Traceback" not in err
    )
    code, _, err = _main(monkeypatch, capsys, "quarantine", "--format", "xml")
    assert code == 2 and "--format must be table, csv or json" in err


def _blocked_summary() -> RunSummary:
    check = "flights.file_readable_and_schema_valid (2013-01): /src/flights.csv: missing columns dep_delay"
    return RunSummary(
        status="blocked",
        months=["2013-01"],
        run_ids=[RUN_A],
        rows_quarantined=2,
        checks=[
            CheckSummary(asset="flights", name="file_readable_and_schema_valid", passed=False, severity="ERROR",
                         partition="2013-01", blocking=True, message="/src/flights.csv: missing columns dep_delay"),
            CheckSummary(asset="flights", name="duplicate_key", passed=True, severity="WARN", partition="2013-01"),
            *(
                CheckSummary(asset="flights", name=name, passed=False, severity="WARN", partition="2013-01",
                             message="not evaluated: the flights batch is blocked", evaluated=False)
                for name in ("range", "type")
            ),
        ],
        problems=[check],
        log_path="/home/logs/run-1.log",
    )  # fmt: skip


def test_a_blocked_summary_says_first_what_blocked_where_and_what_to_do(monkeypatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=buffer, width=200, color_system=None))
    summary = _blocked_summary()
    render.print_summary(summary)
    lines = buffer.getvalue().splitlines()

    assert lines[0] == "BLOCKED: hybridops run 2013-01"
    assert "flights.file_readable_and_schema_valid" in lines[1] and "/src/flights.csv" in lines[1]
    assert lines[2].strip().startswith("what to do:") and "hybridops run --months 2013-01" in lines[2]
    assert f"hybridops quarantine --month 2013-01 --run {RUN_A[:8]}" in lines[3]
    assert "/home/logs/run-1.log" in lines[4]
    text = "\n".join(lines)
    assert "1 passed / 1 failed / 2 not evaluated" in text
    assert "not evaluated (the flights batch was blocked before they ran): range, type" in text
    assert (summary.failed_checks[0].name, len(summary.not_evaluated_checks)) == (
        "file_readable_and_schema_valid",
        2,
    )


def test_progress_marks_blocked_and_failed_steps() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None)
    from rich.progress import Progress

    with Progress(console=console) as progress:
        reporter = render._RichProgress(progress)
        reporter.done("dimensions", "success")
        reporter.done("monthly_partition 2013-01", "blocked")
        reporter.done("training", "failed")
    out = buffer.getvalue()
    assert "✓ dimensions" in out
    assert "■ blocked: monthly_partition 2013-01" in out and "✓ monthly_partition" not in out
    assert "✗ failed: training" in out


def test_a_failed_step_points_at_its_error_not_at_the_data(monkeypatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=buffer, width=200, color_system=None))
    summary = _blocked_summary().model_copy(
        update={"status": "failed", "problems": ["feast_registry: OperationalError: database is locked"]}
    )
    render.print_outcome(summary)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "FAILED: hybridops run 2013-01"
    assert "what to do: fix what is named above (the step's error)" in lines[2]
    assert "header or rows" not in buffer.getvalue()
