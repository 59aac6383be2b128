"""The exporter's ``dagster`` source: incremental reads of the Dagster instance under ``settings.dagster_home``.

Runs by job and status, durations, active runs and their age, daemon heartbeats, per-asset last
materialization and the latest asset check results.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from hybridops.observability.exporter_values import PREFIX, finite, ts

# The exporter logs under one name, whichever of its modules writes the record (as before the split).
log = logging.getLogger("hybridops.observability.exporter")

RUN_DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


@dataclass
class _Run:
    job: str
    status: str
    created: float
    start: float | None
    end: float | None


@dataclass
class _CheckResult:
    asset: str
    check: str
    passed: bool
    severity: str
    blocking: bool
    timestamp: float


class DagsterReader:
    """Incremental reads of one Dagster instance (runs and check evaluations since the last scrape)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._instance: Any = None
        self._runs: dict[str, _Run] = {}
        self._runs_updated_after: datetime | None = None
        self._checks: dict[tuple[str, str], _CheckResult] = {}
        self._check_keys: set[Any] = set()

    def instance(self) -> Any:
        if self._instance is None:
            if not (self.home / "dagster.yaml").exists() and not (self.home / "history").exists():
                raise FileNotFoundError(f"no Dagster instance under {self.home}")
            import dagster as dg

            self._instance = dg.DagsterInstance.from_config(str(self.home))
        return self._instance

    def dispose(self) -> None:
        """Drop the instance and every cache (the next scrape reads everything again)."""
        self._runs.clear()
        self._runs_updated_after = None
        self._checks.clear()
        self._check_keys.clear()
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None

    def _refresh_runs(self) -> list[str]:
        """Update the run cache; returns the ids of runs that finished since the previous call."""
        import dagster as dg

        instance = self.instance()
        filters = dg.RunsFilter(updated_after=self._runs_updated_after) if self._runs_updated_after else None
        records = instance.get_run_records(filters=filters, order_by="update_timestamp", ascending=True)
        finished: list[str] = []
        for record in records:
            run = record.dagster_run
            before = self._runs.get(run.run_id)
            if run.status.value in TERMINAL_STATUSES and (
                before is None or before.status != run.status.value
            ):
                finished.append(run.run_id)
            self._runs[run.run_id] = _Run(
                job=run.job_name,
                status=run.status.value,
                created=ts(record.create_timestamp) or 0.0,
                start=record.start_time,
                end=record.end_time,
            )
            updated = record.update_timestamp
            if updated.tzinfo is None:
                updated = updated.replace(tzinfo=UTC)
            # Re-read one second back next time: rows updated in the same second are never missed.
            after = updated - timedelta(seconds=1)
            if self._runs_updated_after is None or after > self._runs_updated_after:
                self._runs_updated_after = after
        return finished

    def _refresh_checks(self, finished: list[str]) -> None:
        """Learn check keys from the events of newly finished runs, then read their latest executions.

        The SQLite event log is sharded by run (no global cursor), so keys are discovered run by run,
        each run once; the latest result of every known key comes from the check executions table.
        """
        import dagster as dg
        from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

        instance = self.instance()
        for run_id in finished:
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
                evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
                if evaluation is not None:
                    self._check_keys.add(dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name))
        if not self._check_keys:
            return
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(self._check_keys))
        completed = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
        for key, record in latest.items():
            evaluation = record.evaluation if record.status in completed else None
            if evaluation is None:  # planned or running: keep the previous result
                continue
            asset = key.asset_key.to_user_string()
            self._checks[(asset, key.name)] = _CheckResult(
                asset=asset,
                check=key.name,
                passed=bool(evaluation.passed),
                severity=evaluation.severity.value,
                blocking=bool(evaluation.blocking),
                timestamp=record.event.timestamp if record.event else record.create_timestamp,
            )

    def collect(self, now: float) -> Iterator[Metric]:
        instance = self.instance()
        self._refresh_checks(self._refresh_runs())
        yield from self._run_metrics(now)
        yield from self._heartbeat_metrics(instance, now)
        yield from self._asset_metrics(instance)
        yield from self._check_metrics()

    def _run_metrics(self, now: float) -> Iterator[Metric]:
        finished = CounterMetricFamily(
            f"{PREFIX}_dagster_runs",
            "Finished Dagster runs on the instance by job and terminal status (SUCCESS, FAILURE, CANCELED).",
            labels=["dagster_job", "status"],
        )
        active = GaugeMetricFamily(
            f"{PREFIX}_dagster_runs_active",
            "Dagster runs not finished yet by job and status (QUEUED, NOT_STARTED, STARTING, STARTED, "
            "CANCELING).",
            labels=["dagster_job", "status"],
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_dagster_oldest_active_run_age_seconds",
            "Age of the oldest unfinished run by job and status (queued: since created; started: since start).",
            labels=["dagster_job", "status"],
        )
        last_duration = GaugeMetricFamily(
            f"{PREFIX}_dagster_job_last_run_duration_seconds",
            "Duration of the job's most recent finished run.",
            labels=["dagster_job"],
        )
        last_success = GaugeMetricFamily(
            f"{PREFIX}_dagster_job_last_success_timestamp_seconds",
            "End time of the job's most recent successful run.",
            labels=["dagster_job"],
        )
        last_failure = GaugeMetricFamily(
            f"{PREFIX}_dagster_job_last_failure_timestamp_seconds",
            "End time of the job's most recent failed run.",
            labels=["dagster_job"],
        )
        counts: dict[tuple[str, str], int] = {}
        active_counts: dict[tuple[str, str], int] = {}
        oldest_age: dict[tuple[str, str], float] = {}
        durations: dict[str, list[float]] = {}
        latest_end: dict[str, tuple[float, float]] = {}
        success_at: dict[str, float] = {}
        failure_at: dict[str, float] = {}
        for run in self._runs.values():
            key = (run.job, run.status)
            if run.status in TERMINAL_STATUSES:
                counts[key] = counts.get(key, 0) + 1
                if run.start is not None and run.end is not None:
                    duration = max(0.0, run.end - run.start)
                    durations.setdefault(run.job, []).append(duration)
                    if run.job not in latest_end or run.end > latest_end[run.job][0]:
                        latest_end[run.job] = (run.end, duration)
                end = run.end if run.end is not None else run.created
                if run.status == "SUCCESS":
                    success_at[run.job] = max(success_at.get(run.job, 0.0), end)
                elif run.status == "FAILURE":
                    failure_at[run.job] = max(failure_at.get(run.job, 0.0), end)
            else:
                active_counts[key] = active_counts.get(key, 0) + 1
                since = run.start if run.status == "STARTED" and run.start is not None else run.created
                oldest_age[key] = max(oldest_age.get(key, 0.0), max(0.0, now - since))
        for (job, status), n in sorted(counts.items()):
            finished.add_metric([job, status], n)
        for (job, status), n in sorted(active_counts.items()):
            active.add_metric([job, status], n)
            oldest.add_metric([job, status], oldest_age[(job, status)])
        histogram = HistogramMetricFamily(
            f"{PREFIX}_dagster_run_duration_seconds",
            "Durations of finished Dagster runs by job.",
            labels=["dagster_job"],
        )
        for job, values in sorted(durations.items()):
            buckets = [(str(b), float(sum(1 for v in values if v <= b))) for b in RUN_DURATION_BUCKETS]
            buckets.append(("+Inf", float(len(values))))
            histogram.add_metric([job], buckets, sum_value=sum(values))
        for job, (_, duration) in sorted(latest_end.items()):
            last_duration.add_metric([job], duration)
        for job, at in sorted(success_at.items()):
            last_success.add_metric([job], at)
        for job, at in sorted(failure_at.items()):
            last_failure.add_metric([job], at)
        yield from (finished, active, oldest, histogram, last_duration, last_success, last_failure)

    def _heartbeat_metrics(self, instance: Any, now: float) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            f"{PREFIX}_dagster_daemon_heartbeat_age_seconds",
            "Seconds since each Dagster daemon's last heartbeat (absent when no daemon ever ran).",
            labels=["daemon"],
        )
        last = GaugeMetricFamily(
            f"{PREFIX}_dagster_daemon_last_heartbeat_timestamp_seconds",
            "Unix time of each Dagster daemon's last heartbeat.",
            labels=["daemon"],
        )
        try:
            heartbeats = instance.get_daemon_heartbeats() or {}
        except Exception as exc:  # storages without heartbeat support
            log.debug("no daemon heartbeats: %s", exc)
            heartbeats = {}
        for daemon, beat in sorted(heartbeats.items()):
            age.add_metric([daemon], max(0.0, now - beat.timestamp))
            last.add_metric([daemon], beat.timestamp)
        yield from (age, last)

    def _asset_metrics(self, instance: Any) -> Iterator[Metric]:
        materialized = GaugeMetricFamily(
            f"{PREFIX}_dagster_asset_last_materialization_timestamp_seconds",
            "Unix time of each asset's latest materialization (any partition).",
            labels=["asset"],
        )
        modified = GaugeMetricFamily(
            f"{PREFIX}_ingest_source_modified_timestamp_seconds",
            "Modification time of each source file as its latest ingest (raw_<source>) read it.",
            labels=["source"],
        )
        for record in instance.get_asset_records():
            entry = record.asset_entry
            event = entry.last_materialization
            if event is not None:
                name = entry.asset_key.to_user_string()
                materialized.add_metric([name], event.timestamp)
                stamp = _source_modified_at(event)
                if name.startswith("raw_") and stamp is not None:
                    modified.add_metric([name.removeprefix("raw_")], stamp)
        yield from (materialized, modified)

    def _check_metrics(self) -> Iterator[Metric]:
        passed = GaugeMetricFamily(
            f"{PREFIX}_dagster_asset_check_passed",
            "Latest evaluation of each asset check: 1 passed, 0 failed (severity ERROR or WARN, blocking).",
            labels=["asset", "check", "check_severity", "blocking"],
        )
        evaluated = GaugeMetricFamily(
            f"{PREFIX}_dagster_asset_check_last_evaluation_timestamp_seconds",
            "Unix time of each asset check's latest evaluation.",
            labels=["asset", "check"],
        )
        for (asset, check), result in sorted(self._checks.items()):
            passed.add_metric(
                [asset, check, result.severity, str(result.blocking).lower()], 1.0 if result.passed else 0.0
            )
            evaluated.add_metric([asset, check], result.timestamp)
        yield from (passed, evaluated)


def _source_modified_at(event: Any) -> float | None:
    """The ``source_modified_at`` metadata of an ingest materialization (None before it was recorded)."""
    materialization = event.asset_materialization
    value = materialization.metadata.get("source_modified_at") if materialization is not None else None
    stamp: Any = getattr(value, "value", None)
    return float(stamp) if finite(stamp) else None
