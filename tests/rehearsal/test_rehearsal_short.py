"""The short rehearsal (what ``make test`` runs of ``hybridops rehearse``): the hybrid release on this
machine, two months of a trimmed source (every 10th flight) dropped one after the other into the watched
folder, and the daemon's automation alone carrying them; the summary is checked field by field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MONTHS = ["2013-01", "2013-02"]


def test_the_automation_carries_each_dropped_month_to_scored_predictions(tmp_path: Path) -> None:
    missing = [name for name in ("redis-server", "psql", "prometheus") if not shutil.which(name)]
    if missing:
        pytest.skip(
            f"missing programs {missing} (Debian packages redis-server, postgresql-client, prometheus)"
        )
    summary_path = tmp_path / "rehearsal.json"
    command = [
        str(Path(sys.executable).with_name("hybridops")),
        *("rehearse", "--json", str(summary_path), "--months", f"{MONTHS[0]}:{MONTHS[-1]}"),
        *("--every", "10", "--interval", "20", "--timeout", "900", "--root", str(tmp_path / "cluster")),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500, check=False)
    print(done.stdout[-6000:], done.stderr[-3000:])
    assert summary_path.exists(), done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["months_dropped"] == MONTHS
    assert summary["months_processed"] == MONTHS, summary["stages"]
    assert set(summary["time_to_fresh_seconds"]) == set(MONTHS)
    assert all(seconds > 0 for seconds in summary["time_to_fresh_seconds"].values())
    assert summary["runs"] >= 2 and summary["runs_by_status"].get("FAILURE", 0) == 0, summary[
        "runs_by_status"
    ]
    assert summary["max_concurrent_run_workers"] >= 2
    assert summary["lock_errors"] == 0, summary["lock_error_messages"]
    # every 10th flight of the two months, each one in the fact table; every one of them scored
    assert summary["rows"]["fct_flights"] > 4000
    assert summary["rows"]["predictions"] > 0
    assert summary["predictions_served"] > 0
    assert summary["skew_rows_compared"] > 0
    clients = {(c["client"], c["service"]) for c in summary["connections"]}
    assert ("dagster-daemon", "hybridops-postgresql") in clients
    assert ("dagster-user-code", "hybridops-redis") in clients or ("feast", "hybridops-redis") in clients
    assert ("inference", "hybridops-redis") in clients
    assert summary["unreachable_connections"] == []
    assert summary["ok"] is True
    assert done.returncode == 0
