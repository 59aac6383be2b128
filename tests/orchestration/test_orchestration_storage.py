"""The local instance: hybridops's dagster.yaml and the pooled SQLite storages behind it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from hybridops.orchestration.instance import instance_env, prepare_dagster_home
from hybridops.orchestration.storage import LocalEventLogStorage, LocalRunStorage
from hybridops.settings import Settings


@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="numbers")])
def numbers():
    yield dg.MaterializeResult(metadata={"count": 3})
    yield dg.AssetCheckResult(check_name="positive", passed=True)


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = Settings(home=tmp_path / "home")
    for key, value in instance_env(settings).items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.get() as local:
        yield local


def test_instance_uses_the_pooled_storages_in_wal_mode(instance: dg.DagsterInstance) -> None:
    assert isinstance(instance.run_storage, LocalRunStorage)
    assert isinstance(instance.event_log_storage, LocalEventLogStorage)
    result = dg.materialize([numbers], instance=instance)
    assert result.success
    history = Path(os.environ["DAGSTER_HOME"]) / "history"
    with sqlite3.connect(history / "runs" / f"{result.run_id}.db") as con:
        assert con.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_another_process_reads_what_a_run_wrote(instance: dg.DagsterInstance) -> None:
    """The webserver and daemon are other processes: they must see runs, events and check results."""
    result = dg.materialize([numbers], instance=instance)
    code = f"""
import dagster as dg
with dg.DagsterInstance.get() as instance:
    run = instance.get_run_by_id({result.run_id!r})
    event = instance.get_latest_materialization_event(dg.AssetKey("numbers"))
    check = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("numbers"), "positive"), limit=1
    )
    print(run.status.value, event.asset_materialization.metadata["count"].value, check[0].status.value)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.split() == ["SUCCESS", "3", "SUCCEEDED"]


def test_managed_config_is_refreshed_but_a_user_owned_one_is_kept(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    config = prepare_dagster_home(settings) / "dagster.yaml"
    assert "LocalEventLogStorage" in config.read_text()

    # An instance folder written by an earlier release is upgraded in place (same files, same layout).
    config.write_text("telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: false\n")
    prepare_dagster_home(settings)
    assert "LocalRunStorage" in config.read_text()

    owned = "telemetry:\n  enabled: false\n"
    config.write_text(owned)
    prepare_dagster_home(settings)
    assert config.read_text() == owned
