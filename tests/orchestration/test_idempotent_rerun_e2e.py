"""Scenario 4 (issue 14): the same partition twice, and again after crashes mid-write, leaves identical
data: warehouse tables, feature Parquet files and the online store, with no staged file left behind.

The real pipeline on two days of January (``hybridops run``, real Dagster, DuckDB, Feast's SQLite online
store). Run once: fingerprint. Run again in process: same fingerprint. Then ``hybridops run`` as a process
of its own, SIGKILLed as soon as the warehouse write of ``fct_flights`` starts, and once more as soon as
the feature tables' step starts; then a last clean run: the fingerprint is the first one, and no staged
(``*.tmp``) file remains anywhere under the home.

A fingerprint is, per table, its row count and a SHA-256 of its rows sorted (the month's rows of every
warehouse table that has a month, every row of the others), leaving out only the columns that say when
or by which run a row was written; per feature file its rows' SHA-256; per online-store table its rows
without Feast's write time (``created_ts``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from faults_support import events, fault_env, small_source, wait_for

from hybridops.orchestration.runner import run_pipeline
from hybridops.settings import Settings, load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MONTH = "2013-01"
HYBRIDOPS = str(Path(sys.executable).with_name("hybridops"))
# Columns that record when or by which run a row was written, not what it holds.
WRITE_STAMPS = {
    "run_id",
    "_run_id",
    "landed_at",
    "quarantined_at",
    "loaded_at",
    "created_at",
    "written_at",
    "materialized_at",
}
# Tables of the runs' own bookkeeping (one row per step output or run), not data.
BOOKKEEPING = {"step_outputs"}


def _digest(rows: list[tuple]) -> str:
    digest = hashlib.sha256()
    for line in sorted(repr(row) for row in rows):
        digest.update(line.encode())
    return digest.hexdigest()


def fingerprint(settings: Settings) -> dict[str, tuple[int, str]]:
    from hybridops.warehouse.db import connect

    found: dict[str, tuple[int, str]] = {}
    with connect(settings, read_only=True) as con:
        tables = [t for (t,) in con.execute("select table_name from duckdb_tables() order by 1").fetchall()]
        for table in tables:
            if table in BOOKKEEPING:
                continue
            columns = [c for (c, *_) in con.execute(f'describe "{table}"').fetchall()]
            kept = ", ".join(f'"{c}"' for c in columns if c not in WRITE_STAMPS)
            where = f"where month_key = '{MONTH}'" if "month_key" in columns else ""
            rows = con.execute(f'select {kept} from "{table}" {where}').fetchall()
            found[f"warehouse:{table}"] = (len(rows), _digest(rows))
    for path in sorted(settings.parquet_dir.rglob("*.parquet")):
        frame = pd.read_parquet(path)
        rows = list(frame.itertuples(index=False, name=None))
        found[f"parquet:{path.relative_to(settings.parquet_dir)}"] = (len(rows), _digest(rows))
    online = sqlite3.connect(settings.feast_dir / "online.db")
    try:
        names = [n for (n,) in online.execute("select name from sqlite_master where type = 'table'")]
        for name in names:
            rows = online.execute(
                f'select entity_key, feature_name, value, event_ts from "{name}"'
            ).fetchall()
            found[f"online:{name}"] = (len(rows), _digest(rows))
    finally:
        online.close()
    return found


def staged_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*.tmp") if "dagster" not in p.relative_to(home).parts[:1]]


def crash_during(step: str, env: dict[str, str], home: Path, log: Path) -> float:
    """``hybridops run`` killed with SIGKILL when ``step`` starts; seconds from start to kill."""
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    before = {run.run_id for run in instance.get_runs()}
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [HYBRIDOPS, "run", "--months", MONTH], env=env, stdout=out, stderr=subprocess.STDOUT
        )

    def step_started() -> bool:
        for run in instance.get_runs(limit=3):
            if run.run_id in before:
                continue
            for entry in events(instance, run.run_id):
                event = entry.dagster_event
                if event and event.event_type_value == "STEP_START" and entry.step_key == step:
                    return True
        return False

    try:
        wait_for(
            f"step {step}",
            step_started,
            300,
            log,
            poll=0.05,
            abort=lambda: None if process.poll() is None else f"exited {process.returncode}",
        )
        os.kill(process.pid, signal.SIGKILL)
        killed = time.monotonic() - started
        assert process.wait(30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        instance.dispose()
    return killed


def test_same_partition_twice_and_after_crashes_mid_write_is_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = small_source(tmp_path)
    home = tmp_path / "home"
    env = fault_env(home, source)
    for key in (
        "HYBRIDOPS_HOME",
        "HYBRIDOPS_SOURCE_DIR",
        "DAGSTER_HOME",
        "HYBRIDOPS_QUALITY__COMPLETENESS_SEVERITY",
    ):
        monkeypatch.setenv(key, env[key])
    settings = load_settings(home=home, source_dir=source)

    timings = {}
    started = time.monotonic()
    assert run_pipeline(settings, [MONTH]).status == "success"
    timings["first"] = time.monotonic() - started
    first = fingerprint(settings)
    assert any(k.startswith("online:") and v[0] for k, v in first.items()), first
    assert any(k.startswith("parquet:features") for k in first), first

    started = time.monotonic()
    assert run_pipeline(settings, [MONTH]).status == "success"
    timings["second"] = time.monotonic() - started
    second = fingerprint(settings)
    assert second == first, {
        k: (first.get(k), second.get(k))
        for k in first.keys() | second.keys()
        if first.get(k) != second.get(k)
    }

    log = tmp_path / "crashed-runs.log"
    kills = {step: crash_during(step, env, home, log) for step in ("fct_flights", "feature_tables")}

    started = time.monotonic()
    assert run_pipeline(settings, [MONTH]).status == "success"
    timings["after crashes"] = time.monotonic() - started
    after = fingerprint(settings)
    assert after == first, {
        k: (first.get(k), after.get(k)) for k in first.keys() | after.keys() if first.get(k) != after.get(k)
    }
    assert staged_files(home) == []
    rows = sum(count for count, _ in first.values())
    print(
        f"\nscenario 4: {len(first)} tables/files fingerprinted ({rows} rows); runs "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
        + "; killed "
        + ", ".join(f"at {step} start {seconds:.1f} s in" for step, seconds in kills.items())
        + "; the second run and the run after the crashes identical to the first; no staged file left"
    )
