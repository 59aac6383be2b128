"""Scenario 2 (issue 14): a step failing transiently succeeds under the retry policy; a permanent failure is
not retried and stops everything downstream.

The real pipeline (``hybridops run`` in process, real Dagster, DuckDB, Feast) on two days of January with
the Feast online store on a redis-server that is not running when the pipeline starts: the first step that
talks to it fails with a refused connection, Dagster puts it up for retry (``step_retries`` 3,
``step_retry_delay_seconds`` 1, exponential backoff with jitter), and the test starts redis-server only
then. The retry succeeds, the online store holds the month, the run succeeds. Then the features folder is
replaced by a file (a bad file in the state directory): ``feature_tables`` fails once, without retry, and
``online_features`` after it never starts.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from faults_support import LateRedis, events, small_source, step_events

from hybridops.orchestration.runner import run_pipeline
from hybridops.settings import load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MONTH = "2013-01"


def test_transient_failure_retried_then_permanent_failure_stops_downstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = small_source(tmp_path)
    home = tmp_path / "home"
    redis = LateRedis(tmp_path / "redis")
    for key, value in {
        "HYBRIDOPS_ORCHESTRATION__STEP_RETRIES": "3",
        "HYBRIDOPS_ORCHESTRATION__STEP_RETRY_DELAY_SECONDS": "1",
        "HYBRIDOPS_FEAST__ONLINE_STORE": json.dumps(
            {"type": "redis", "connection_string": redis.connection_string}
        ),
        # Two days of a month: completeness (every day of the month) reports, it does not block here.
        "HYBRIDOPS_QUALITY__COMPLETENESS_SEVERITY": "warn",
        "HYBRIDOPS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(home=home, source_dir=source)
    first_retry: dict[str, object] = {}
    stop = threading.Event()

    def start_redis_after_the_first_retry() -> None:
        while not stop.is_set():
            if (home / "dagster" / "dagster.yaml").exists():
                with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
                    retries = step_events(instance, "STEP_UP_FOR_RETRY")
                if retries:
                    first_retry.update(step=retries[0].step_key, at=time.monotonic())
                    redis.start()
                    return
            time.sleep(0.2)

    watcher = threading.Thread(target=start_redis_after_the_first_retry, daemon=True)
    watcher.start()
    try:
        started = time.monotonic()
        summary = run_pipeline(settings, [MONTH])
        stop.set()
        watcher.join(10)
        assert summary.status == "success", summary.problems
        assert first_retry, "no step was put up for retry while the online store was away"

        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            retries = step_events(instance, "STEP_UP_FOR_RETRY")
            restarts = step_events(instance, "STEP_RESTARTED")
            failures = step_events(instance, "STEP_FAILURE")
            online = [e for e in step_events(instance, "STEP_SUCCESS") if e.step_key == "online_features"]
            warned = [
                e.message
                for run in instance.get_runs()
                for e in events(instance, run.run_id)
                if "transient error, retry" in (e.message or "")
            ]
        assert not failures, [e.message for e in failures]
        assert retries and restarts and online
        # The retry says why: the refused connection to the online store.
        assert any("Connection" in message for message in warned), warned
        recovered_s = online[-1].timestamp - retries[0].timestamp
        keys = redis.keys()
        assert keys > 0
        transient_s = time.monotonic() - started

        # A permanent failure: a file where the feature tables' folder belongs.
        features = settings.parquet_dir / "features"
        for path in sorted(features.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        features.rmdir()
        features.write_text("not a folder")
        summary = run_pipeline(settings, [MONTH])
        assert summary.status == "failed"
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            last = instance.get_runs(filters=dg.RunsFilter(job_name="monthly_partition"), limit=1)[0]
            kinds = [
                (e.step_key, e.dagster_event.event_type_value)
                for e in events(instance, last.run_id)
                if e.dagster_event and e.step_key
            ]
        assert ("feature_tables", "STEP_FAILURE") in kinds
        assert [k for k in kinds if k[0] == "feature_tables" and k[1] == "STEP_UP_FOR_RETRY"] == []
        assert not [k for k in kinds if k[0] == "online_features" and k[1] == "STEP_START"], kinds
        assert any("feature_tables" in problem for problem in summary.problems), summary.problems
    finally:
        stop.set()
        redis.stop()
    print(
        f"\nscenario 2: first retry at {first_retry['step']}; {len(retries)} retries, online_features "
        f"succeeded {recovered_s:.1f} s after the first retry, {keys} Redis keys; transient pass "
        f"{transient_s:.1f} s; permanent: feature_tables failed once, online_features never started"
    )
