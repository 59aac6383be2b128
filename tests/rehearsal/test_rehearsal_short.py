"""The short rehearsal (``make rehearse-test``) of ``hybridops rehearse``: the hybrid release on this
machine, three whole months of the source dropped one after the other into the watched folder (on every
10th flight the first candidate's holdout AUC was 0.591 and the promotion gate, rightly, refused it, so
nothing was ever scored), and the daemon's automation alone carrying them to the online store, the first
champion and the last month's scored predictions. The summary is checked field by field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rehearsal_support import TOOLS_USED
from tools import require_tool

from hybridops.rehearsal.source import MonthlySource

MONTHS = ["2013-01", "2013-02", "2013-03"]


@pytest.mark.rehearsal
def test_the_automation_carries_each_dropped_month_to_scored_predictions(tmp_path: Path) -> None:
    for tool in TOOLS_USED:
        require_tool(tool)
    summary_path = tmp_path / "rehearsal.json"
    command = [
        str(Path(sys.executable).with_name("hybridops")),
        *("rehearse", "--json", str(summary_path), "--months", f"{MONTHS[0]}:{MONTHS[-1]}"),
        *("--every", "1", "--interval", "20", "--timeout", "2400", "--root", str(tmp_path / "cluster")),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3300, check=False)
    print(done.stdout[-6000:], done.stderr[-3000:])
    assert summary_path.exists(), done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["months_dropped"] == MONTHS
    assert summary["months_processed"] == MONTHS, summary["stages"]
    assert MONTHS[-1] in summary["months_scored"], summary["stages"]
    assert summary["time_to_fresh_seconds"][MONTHS[-1]] > 0
    assert summary["runs"] >= 2 and summary["runs_by_status"].get("FAILURE", 0) == 0, summary[
        "runs_by_status"
    ]
    assert summary["max_concurrent_run_workers"] >= 2
    assert summary["lock_errors"] == 0, summary["lock_error_messages"]
    # The three months' flights in the fact table (the quality gate quarantines at most 2%), and the scored
    # month's flights in the predictions, read through the warehouse backend.
    source = MonthlySource(tmp_path / "unused")
    dropped = {month: len(source.flights_of(month)) for month in MONTHS}
    assert 0.98 * sum(dropped.values()) <= summary["rows"]["fct_flights"] <= sum(dropped.values())
    assert 0 < summary["rows"]["predictions"] <= sum(dropped[m] for m in summary["months_scored"])
    assert summary["predictions_served"] > 0
    assert summary["skew_rows_compared"] > 0
    clients = {(c["client"], c["service"]) for c in summary["connections"]}
    # The daemon and the run pods on the instance's PostgreSQL, the run pods writing the online store, the
    # inference service reading it, Prometheus scraping the exporter: each as the processes really did.
    for pair in [
        ("dagster-daemon", "hybridops-postgresql"),
        ("dagster-run", "hybridops-postgresql"),
        ("dagster-run", "hybridops-redis"),
        ("inference", "hybridops-redis"),
        ("prometheus", "hybridops-exporter"),
    ]:
        assert pair in clients, (pair, sorted(clients))
    assert summary["unreachable_connections"] == []
    assert summary["ok"] is True
    assert done.returncode == 0
