"""Scenario 1 (issue 14): a run worker SIGKILLed mid-run is failed, retried from the failed step, and every
asset partition is written exactly once.

A real ``dagster-daemon`` on a temp home (run queue, run monitoring, run retries as ``dagster.yaml`` says,
written from ``settings.orchestration``), a ``monthly_partition`` run of two days of January launched
through the instance: the daemon's code server starts the run worker process. When the run reaches the
online store's writer (``online_features``, a pooled step: its slot must not outlive the dead worker) the
worker is killed with SIGKILL. Then: the run is FAILURE with the worker's exit reported, the daemon
launches a retry (FROM_FAILURE) that runs only the steps that had not succeeded and succeeds; each asset's
partition has exactly one materialization across both runs, and the warehouse holds each flight once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest
from faults_support import (
    assert_resumed_once,
    events,
    fault_env,
    launch,
    run_ended,
    running_daemon,
    scalar,
    small_source,
    started_steps,
    succeeded_steps,
    table_fingerprint,
    wait_for,
    wait_retry,
    wait_status,
    wait_success,
    worker_pid,
)

from hybridops.orchestration.instance import initialize_storage
from hybridops.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MONTH = "2013-01"
KILL_AT = "online_features"
RUN_TIMEOUT_S = 420


@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
def test_sigkilled_run_worker_is_retried_from_failure_and_writes_each_partition_once(
    tmp_path: Path, executor: str
) -> None:
    from dagster_project.partitions import add_months

    source = small_source(tmp_path)
    home = tmp_path / "home"
    env = fault_env(home, source, run_monitoring_interval_seconds=2, run_retries=1, executor=executor)
    settings = Settings(home=home, source_dir=source)
    # The instance as `hybridops ui` prepares it (dagster.yaml from these settings), the month registered.
    saved = os.environ.copy()
    os.environ.update({k: v for k, v in env.items() if k.startswith("HYBRIDOPS_ORCHESTRATION__")})
    try:
        initialize_storage(Settings(home=home, source_dir=source))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    config = (home / "dagster" / "dagster.yaml").read_text()
    assert "poll_interval_seconds: 2" in config and "max_retries: 1" in config, config
    log = tmp_path / "daemon.log"
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    add_months(instance, [MONTH])

    with running_daemon(env, log) as daemon:
        # The reference tables first (planes, airlines, airports, the Feast registry), as `hybridops run` does.
        wait_success(instance, launch(env, "dimensions"), RUN_TIMEOUT_S, log)
        started = time.monotonic()
        run_id = launch(env, "monthly_partition", MONTH)
        ended = run_ended(instance, run_id)
        pid = wait_for(
            "the run worker's pid", lambda: worker_pid(instance, run_id), RUN_TIMEOUT_S, log, abort=ended
        )
        wait_for(
            f"step {KILL_AT}",
            lambda: KILL_AT in started_steps(instance, run_id),
            RUN_TIMEOUT_S,
            log,
            abort=ended,
        )
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert daemon.poll() is None, "the daemon died with the worker"

        wait_status(instance, run_id, dg.DagsterRunStatus.FAILURE, 120, log)
        marked_failed_s = time.monotonic() - killed_at
        done_before_kill = succeeded_steps(instance, run_id)
        assert KILL_AT not in done_before_kill
        assert any("SIGKILL" in (e.message or "") for e in events(instance, run_id)), [
            e.message for e in events(instance, run_id)
        ][-5:]

        retry_run = wait_retry(instance, run_id, log)
        retry_launched_s = time.monotonic() - killed_at
        wait_success(instance, retry_run.run_id, RUN_TIMEOUT_S, log)
        total_s = time.monotonic() - started

    rerun, counts = assert_resumed_once(instance, run_id, retry_run.run_id, done_before_kill, KILL_AT, MONTH)

    # The warehouse holds each flight of the month once, as many as fct_flights reported.
    rows, _ = table_fingerprint(settings, "fct_flights", f"month_key = '{MONTH}'")
    distinct = scalar(
        settings,
        f"select count(distinct flight_id) from fct_flights where month_key = '{MONTH}'",
    )
    reported = [
        e.dagster_event.event_specific_data.materialization.metadata["warehouse_rows"].value  # type: ignore[union-attr]
        for rid in (run_id, retry_run.run_id)
        for e in events(instance, rid)
        if e.dagster_event
        and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        and e.dagster_event.asset_key.to_user_string() == "fct_flights"  # type: ignore[union-attr]
    ]
    assert reported == [rows] and distinct == rows, (reported, rows, distinct)
    instance.dispose()
    print(
        f"\nscenario 1 ({executor}): killed {KILL_AT} (pid {pid}); {len(done_before_kill)} steps done before, "
        f"{len(rerun)} re-run; marked FAILURE {marked_failed_s:.1f} s after the kill, retry launched "
        f"{retry_launched_s:.1f} s after it; {len(counts)} asset partitions written once; fct_flights "
        f"{rows} rows; whole scenario {total_s:.1f} s"
    )
