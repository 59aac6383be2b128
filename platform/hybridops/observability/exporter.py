"""A pull-based Prometheus exporter of the whole platform, evaluated at scrape time.

Dagster has no ``/metrics`` endpoint and push-based metrics never see runs that crash or sit queued, so
this collector reads the stores themselves each time Prometheus scrapes:

* ``dagster``: the instance under ``settings.dagster_home`` (runs by job and status, durations, active
  runs and their age, daemon heartbeats, per-asset last materialization, latest asset check results);
* ``warehouse``: the warehouse (either backend) opened read-only (quarantine, SPC points and violations, drift of
  the latest scored month, live model performance, alias events, the skew audit when present);
* ``feast``: the Feast registry (materialization intervals and last update of each feature view);
* ``mlflow``: the registry's champion (version and holdout metrics) and the promotion gate's decisions
  (refusals counted, the latest decision as 1 promoted / 0 refused).

``settings.monitoring.exporter_sources`` lists the sources to read (all four by default): a source left
out is never opened, exports nothing (no ``hybridops_exporter_source_up`` either) and logs nothing, so a
deployment without MLflow or Feast does not report them down. Each enabled source is read independently:
a missing or unreadable store sets ``hybridops_exporter_source_up{source=...}`` to 0 and the other sources
are still exported; a cached source that was read before keeps exporting its last values while it is
unreadable (a pipeline run holds the DuckDB warehouse for its whole duration), so its alerts do not flap
for a lock: ``source_up`` says the values are stale. Reads that change only when a batch runs (warehouse, MLflow, Feast) are cached for
``cache_seconds``: besides being cheaper, fewer read-only opens of the DuckDB file mean fewer collisions
with the pipeline's writer (DuckDB admits one writing process or many reading ones, never both). The
Dagster reads are incremental (runs updated and check evaluations stored since the previous scrape), so a
scrape stays well under a second on a long-lived instance.

The freshness thresholds of ``settings.monitoring`` are exported too
(``hybridops_dagster_asset_freshness_threshold_seconds{asset}``,
``hybridops_feast_freshness_threshold_seconds``), and so are the model alerts' (``hybridops_model_live_auc_max_drop``,
``hybridops_model_prediction_psi_threshold``, ``hybridops_model_drifted_importance_threshold``; each
feature's learnt PSI threshold comes with its PSI from the warehouse): the alerts compare against them, so
the thresholds are settings (and chart values), not numbers in the rule files. Each is exported only with
its source (dagster, feast, warehouse) enabled.

The collector never imports ``dagster_project``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hybridops.observability.thresholds import alert_thresholds
from hybridops.settings import EXPORTER_SOURCES, ExporterSource, Settings

log = logging.getLogger(__name__)

PREFIX = "hybridops"
SOURCES: tuple[ExporterSource, ...] = EXPORTER_SOURCES
RUN_DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
SPC_SERIES = ("value", "center", "ucl", "lcl", "ewma", "ewma_ucl", "ewma_lcl")
LIVE_METRICS = ("auc", "logloss", "brier")


def _ts(value: datetime | None) -> float | None:
    """Unix seconds of a datetime; naive datetimes (DuckDB, Feast) are UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _month_start(month_key: str) -> float:
    return datetime.strptime(month_key, "%Y-%m").replace(tzinfo=UTC).timestamp()


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# --- Dagster -----------------------------------------------------------------------------------------
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


class _DagsterReader:
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
                created=_ts(record.create_timestamp) or 0.0,
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
    return float(stamp) if _finite(stamp) else None


# --- the warehouse -----------------------------------------------------------------------------------
def _warehouse_metrics(settings: Settings) -> Iterator[Metric]:
    from hybridops.warehouse.db import connect, exists

    if not exists(settings):
        raise FileNotFoundError(f"no warehouse yet ({settings.warehouse.backend})")
    # No lock wait: a DuckDB file held by a pipeline run is reported as a failed scrape (source_up 0);
    # the lakehouse never blocks a reader.
    with connect(settings, read_only=True, lock_wait_seconds=0) as con:
        tables = {
            row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()
        }
        metrics: list[Metric] = []
        if "quarantine" in tables:
            metrics.extend(_quarantine(con))
        if "spc_violations" in tables:
            metrics.extend(_spc_violations(con))
        if "spc_points" in tables:
            metrics.extend(_spc_points(con))
        if "drift_metrics" in tables:
            metrics.extend(_drift(con))
        if "model_performance" in tables:
            metrics.extend(_performance(con))
        if "drift_reports" in tables:
            metrics.extend(_drift_report(con))
        if "model_alias_events" in tables:
            metrics.extend(_alias_events(con))
        if "skew_audit" in tables:
            metrics.extend(_skew(con))
    yield from metrics


def _quarantine(con: Any) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        f"{PREFIX}_quality_quarantined_rows",
        "Rows currently in the quarantine table by source table and failed check.",
        labels=["table", "check"],
    )
    rows = con.execute(
        "select table_name, check_name, count(*) from quarantine group by all order by all"
    ).fetchall()
    for table, check, n in rows:
        family.add_metric([str(table), str(check)], float(n))
    yield family


def _spc_violations(con: Any) -> Iterator[Metric]:
    total = GaugeMetricFamily(
        f"{PREFIX}_spc_violations",
        "SPC rule violations over all loaded months by metric, rule and severity.",
        labels=["metric", "rule", "check_severity"],
    )
    latest = GaugeMetricFamily(
        f"{PREFIX}_spc_latest_month_violations",
        "SPC rule violations in the latest charted month by metric, rule and severity.",
        labels=["metric", "rule", "check_severity"],
    )
    for metric, rule, severity, n in con.execute(
        "select metric, rule, severity, count(*) from spc_violations group by all order by all"
    ).fetchall():
        total.add_metric([metric, rule, severity], float(n))
    for metric, rule, severity, n in con.execute(
        """select metric, rule, severity, count(*) from spc_violations
           where month_key = (select max(month_key) from spc_violations) group by all order by all"""
    ).fetchall():
        latest.add_metric([metric, rule, severity], float(n))
    yield from (total, latest)


def _spc_points(con: Any) -> Iterator[Metric]:
    point = GaugeMetricFamily(
        f"{PREFIX}_spc_point",
        "Latest day of each SPC control chart: series value, center, ucl, lcl, ewma, ewma_ucl, ewma_lcl.",
        labels=["metric", "series"],
    )
    day = GaugeMetricFamily(
        f"{PREFIX}_spc_latest_point_timestamp_seconds",
        "Unix time (UTC midnight) of the latest charted day per metric.",
        labels=["metric"],
    )
    columns = ", ".join(SPC_SERIES)
    rows = con.execute(
        f"""select metric, day, {columns} from spc_points
            qualify row_number() over (partition by metric order by day desc) = 1 order by metric"""
    ).fetchall()
    for metric, when, *values in rows:
        for series, value in zip(SPC_SERIES, values, strict=True):
            if _finite(value):
                point.add_metric([metric, series], float(value))
        stamp = _ts(when)
        if stamp is not None:
            day.add_metric([metric], stamp)
    yield from (point, day)


def _columns(con: Any, table: str) -> set[str]:
    """The columns of ``table`` (tables written by an older version lack the newer columns)."""
    rows = con.execute("select column_name from duckdb_columns() where table_name = ?", [table]).fetchall()
    return {str(row[0]) for row in rows}


def _drift(con: Any) -> Iterator[Metric]:
    psi = GaugeMetricFamily(
        f"{PREFIX}_model_feature_psi",
        "Population Stability Index of each feature in the latest scored month.",
        labels=["feature"],
    )
    ks = GaugeMetricFamily(
        f"{PREFIX}_model_feature_ks_statistic",
        "Kolmogorov-Smirnov statistic of each feature in the latest scored month.",
        labels=["feature"],
    )
    drifted = GaugeMetricFamily(
        f"{PREFIX}_model_feature_drifted",
        "1 when the feature drifted in the latest scored month (PSI or KS above its threshold).",
        labels=["feature"],
    )
    psi_threshold = GaugeMetricFamily(
        f"{PREFIX}_model_feature_psi_threshold",
        "Each feature's PSI threshold in the latest scored month: learnt from the training window's "
        "month-to-month variation, at least monitoring.psi_threshold (HybridopsFeatureDrift).",
        labels=["feature"],
    )
    importance = GaugeMetricFamily(
        f"{PREFIX}_model_feature_importance",
        "Each feature's share of the scoring champion's LightGBM gain importance.",
        labels=["feature"],
    )
    month = GaugeMetricFamily(
        f"{PREFIX}_model_drift_month_timestamp_seconds",
        "Start (UTC) of the latest month with drift metrics.",
    )
    present = _columns(con, "drift_metrics")
    extra = [name for name in ("psi_threshold", "importance") if name in present]
    selected = ", ".join(["month_key", "feature", "psi", "ks_stat", "drifted", *extra])
    rows = con.execute(
        f"""select {selected} from drift_metrics
           where month_key = (select max(month_key) from drift_metrics) order by feature"""
    ).fetchall()
    for _month, feature, psi_value, ks_value, flag, *values in rows:
        if _finite(psi_value):
            psi.add_metric([feature], float(psi_value))
        if _finite(ks_value):
            ks.add_metric([feature], float(ks_value))
        drifted.add_metric([feature], 1.0 if flag else 0.0)
        for family, value in zip((psi_threshold, importance)[: len(extra)], values, strict=True):
            if _finite(value):
                family.add_metric([feature], float(value))
    if rows:
        month.add_metric([], _month_start(rows[0][0]))
    yield from (psi, ks, drifted, psi_threshold, importance, month)


def _drift_report(con: Any) -> Iterator[Metric]:
    """The latest scored month's report: importance-weighted drift, prediction drift, the holdout AUC."""
    share = GaugeMetricFamily(
        f"{PREFIX}_model_drifted_importance",
        "Share of the scoring champion's gain importance carried by the features drifted in the latest "
        "scored month (HybridopsModelDriftHarmful).",
        labels=["model_version"],
    )
    prediction = GaugeMetricFamily(
        f"{PREFIX}_model_prediction_psi",
        "PSI of the latest scored month's scores against the champion's holdout scores "
        "(HybridopsPredictionDrift).",
        labels=["model_version"],
    )
    holdout = GaugeMetricFamily(
        f"{PREFIX}_model_live_holdout_auc",
        "Holdout ROC AUC of the model version that scored the latest month: the reference of its live AUC "
        "(HybridopsModelLiveAucDegraded).",
        labels=["model_version"],
    )
    present = _columns(con, "drift_reports")
    wanted = [name for name in ("drifted_importance", "prediction_psi", "holdout_auc") if name in present]
    if not wanted:
        yield from (share, prediction, holdout)
        return
    row = con.execute(
        f"select model_version, {', '.join(wanted)} from drift_reports order by month_key desc limit 1"
    ).fetchone()
    if row is not None:
        version, *values = row
        families = {"drifted_importance": share, "prediction_psi": prediction, "holdout_auc": holdout}
        for name, value in zip(wanted, values, strict=True):
            if _finite(value):
                families[name].add_metric([str(version)], float(value))
    yield from (share, prediction, holdout)


def _performance(con: Any) -> Iterator[Metric]:
    live = GaugeMetricFamily(
        f"{PREFIX}_model_live_metric",
        "Model performance on the latest scored month's known outcomes (auc, logloss, brier).",
        labels=["metric", "model_version"],
    )
    scored = GaugeMetricFamily(
        f"{PREFIX}_model_live_scored_rows",
        "Flights with known outcomes in the latest scored month.",
        labels=["model_version"],
    )
    row = con.execute(
        f"""select model_version, {", ".join(LIVE_METRICS)}, rows from model_performance
            order by month_key desc limit 1"""
    ).fetchone()
    if row is not None:
        version, *values, rows = row
        for name, value in zip(LIVE_METRICS, values, strict=True):
            if _finite(value):
                live.add_metric([name, str(version)], float(value))
        scored.add_metric([str(version)], float(rows or 0))
    yield from (live, scored)


def _alias_events(con: Any) -> Iterator[Metric]:
    changes = CounterMetricFamily(
        f"{PREFIX}_model_alias_changes",
        "Registry alias changes recorded in model_alias_events by model and alias (champion = promotions "
        "and rollbacks).",
        labels=["model", "alias"],
    )
    changed = GaugeMetricFamily(
        f"{PREFIX}_model_champion_changed_timestamp_seconds",
        "Unix time the champion alias last moved.",
        labels=["model"],
    )
    for model, alias, n in con.execute(
        "select model_name, alias, count(*) from model_alias_events group by all order by all"
    ).fetchall():
        changes.add_metric([model, alias], float(n))
    for model, at in con.execute(
        """select model_name, max("at") from model_alias_events where alias = 'champion'
           group by all order by all"""
    ).fetchall():
        stamp = _ts(at)
        if stamp is not None:
            changed.add_metric([model], stamp)
    yield from (changes, changed)


def _skew(con: Any) -> Iterator[Metric]:
    """The skew audit's mismatch rate (online vs offline features); the table's shape is flexible.

    Accepted shapes: a boolean ``mismatch`` column per compared value, or counts ``mismatches`` and
    ``compared``; grouped by ``feature_view`` (or ``feature``) when such a column exists.
    """
    columns = {
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_name = 'skew_audit'"
        ).fetchall()
    }
    ratio = GaugeMetricFamily(
        f"{PREFIX}_feast_skew_mismatch_ratio",
        "Share of served feature values that differ from Feast's point-in-time recomputation.",
        labels=["feature_view"],
    )
    group = next((c for c in ("feature_view", "view", "feature") if c in columns), None)
    key = f'"{group}"' if group else "'all'"
    if "mismatch" in columns:
        sql = f"select {key}, avg(cast(mismatch as double)) from skew_audit group by all order by all"
    elif {"mismatches", "compared"} <= columns:
        sql = (
            f"select {key}, sum(mismatches) / nullif(sum(compared), 0) from skew_audit "
            "group by all order by all"
        )
    else:
        log.warning("skew_audit has none of the expected columns: %s", sorted(columns))
        sql = ""
    if sql:
        for name, value in con.execute(sql).fetchall():
            if _finite(value):
                ratio.add_metric([str(name)], float(value))
    yield ratio


# --- Feast -------------------------------------------------------------------------------------------
def _feast_metrics(settings: Settings, store: Any) -> list[Metric]:
    until = GaugeMetricFamily(
        f"{PREFIX}_feast_materialized_until_timestamp_seconds",
        "End of the latest materialization interval of each feature view (event time loaded online).",
        labels=["feature_view"],
    )
    updated = GaugeMetricFamily(
        f"{PREFIX}_feast_last_materialization_timestamp_seconds",
        "Unix time the feature view was last updated in the registry (each materialization updates it).",
        labels=["feature_view"],
    )
    intervals = GaugeMetricFamily(
        f"{PREFIX}_feast_materialization_intervals",
        "Materialization intervals recorded for each feature view.",
        labels=["feature_view"],
    )
    store.refresh_registry()
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        spans = list(view.materialization_intervals or [])
        intervals.add_metric([view.name], float(len(spans)))
        if spans:
            end = _ts(max(span[1] for span in spans))
            if end is not None:
                until.add_metric([view.name], end)
            stamp = _ts(view.last_updated_timestamp)
            if stamp is not None:
                updated.add_metric([view.name], stamp)
    return [until, updated, intervals]


def _feast_registry_path(settings: Settings) -> Path | None:
    registry = settings.feast.registry
    if registry is None:
        return settings.feast_dir / "registry.db"
    if "://" in registry:
        return None  # a SQL registry: no file to check
    return Path(registry).expanduser()


# --- MLflow ------------------------------------------------------------------------------------------
GATE_PROMOTE_TAG = "hybridops.gate_promote"  # hybridops.registry.models.GATE_PROMOTE_TAG (not imported early)


def _mlflow_metrics(settings: Settings) -> list[Metric]:
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise FileNotFoundError(f"no MLflow store at {uri}")
    # Imported once there is a store to read: importing MLflow takes seconds.
    from hybridops.registry.models import champion, gate_decisions

    info = InfoMetricFamily(
        f"{PREFIX}_model_champion",
        "The registry's champion model version.",
        labels=["model"],
    )
    version = GaugeMetricFamily(
        f"{PREFIX}_model_champion_version",
        "Version number of the registry's champion.",
        labels=["model"],
    )
    holdout = GaugeMetricFamily(
        f"{PREFIX}_model_champion_metric",
        "Metrics logged with the champion's training run (holdout evaluation).",
        labels=["model", "metric"],
    )
    refusals = CounterMetricFamily(
        f"{PREFIX}_model_gate_refusals",
        "Candidate versions the promotion gate refused (tag hybridops.gate_promote=false).",
        labels=["model"],
    )
    last = GaugeMetricFamily(
        f"{PREFIX}_model_gate_last_promoted",
        "The gate's latest decision: 1 when that candidate was promoted, 0 when it was refused (the reason "
        "is its tag hybridops.gate_decision).",
        labels=["model", "version"],
    )
    decisions = gate_decisions(settings)
    model_name = settings.mlflow.model_name
    refusals.add_metric([model_name], float(sum(d.tags.get(GATE_PROMOTE_TAG) == "false" for d in decisions)))
    if decisions:
        latest = decisions[-1]
        last.add_metric([model_name, latest.version], float(latest.tags.get(GATE_PROMOTE_TAG) == "true"))
    current = champion(settings)
    if current is not None:
        info.add_metric([current.name], {"version": current.version, "run_id": current.run_id or ""})
        if current.version.isdigit():
            version.add_metric([current.name], float(current.version))
        for name, value in sorted(current.metrics.items()):
            if _finite(value):
                holdout.add_metric([current.name, name], float(value))
    return [info, version, holdout, refusals, last]


# --- thresholds from settings ------------------------------------------------------------------------
def _threshold_metrics(settings: Settings) -> list[Metric]:
    """The freshness thresholds the alert rules compare against (``on (asset)`` matching), each with its
    source: the assets' with dagster, the feature views' with feast."""
    monitoring = settings.monitoring
    sources = set(monitoring.exporter_sources)
    assets = GaugeMetricFamily(
        f"{PREFIX}_dagster_asset_freshness_threshold_seconds",
        "Age of the latest materialization above which a watched asset is stale "
        "(monitoring.freshness_max_age_hours, freshness_max_age_hours_by_asset).",
        labels=["asset"],
    )
    for asset, hours in sorted(monitoring.freshness_thresholds_hours().items()):
        assets.add_metric([asset], hours * 3600.0)
    views = GaugeMetricFamily(
        f"{PREFIX}_feast_freshness_threshold_seconds",
        "Age of the latest materialization above which a feature view is stale "
        "(monitoring.feature_view_max_age_hours).",
    )
    views.add_metric([], monitoring.feature_view_max_age_hours * 3600.0)
    model: list[Metric] = []
    for name, value, text in (
        ("model_live_auc_max_drop", monitoring.max_auc_drop, "monitoring.max_auc_drop"),
        (
            "model_prediction_psi_threshold",
            monitoring.prediction_psi_threshold,
            "monitoring.prediction_psi_threshold",
        ),
        (
            "model_drifted_importance_threshold",
            monitoring.drifted_importance_threshold,
            "monitoring.drifted_importance_threshold",
        ),
    ):
        family = GaugeMetricFamily(f"{PREFIX}_{name}", f"The model alerts' threshold {text}.")
        family.add_metric([], float(value))
        model.append(family)
    # The model thresholds go with the warehouse, where the figures they judge come from.
    return [
        family
        for source, families in (("dagster", [assets]), ("feast", [views]), ("warehouse", model))
        if source in sources
        for family in families
    ]


# --- the collector -----------------------------------------------------------------------------------
class HybridopsCollector(Collector):
    """Reads the enabled stores at scrape time; one failing store never hides the others."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._dagster = _DagsterReader(settings.dagster_home)
        self._feast_store: Any = None
        self._cache: dict[str, tuple[float, list[Metric]]] = {}
        self._errors: dict[str, str] = {}  # the last error of each unreadable source

    def close(self) -> None:
        self._dagster.dispose()

    def describe(self) -> Iterable[Metric]:
        return []  # collected at scrape time only (no store access on registration)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        now = self.clock()
        up = GaugeMetricFamily(
            f"{PREFIX}_exporter_source_up",
            "1 when the exporter could read the source at this scrape; only the sources enabled by "
            "monitoring.exporter_sources (dagster, warehouse, feast, mlflow) are reported.",
            labels=["source"],
        )
        duration = GaugeMetricFamily(
            f"{PREFIX}_exporter_source_read_duration_seconds",
            "Time spent reading each source at this scrape (0 when served from the cache).",
            labels=["source"],
        )
        readers: dict[ExporterSource, Callable[[], list[Metric]]] = {
            "dagster": lambda: list(self._dagster.collect(now)),
            "warehouse": lambda: list(_warehouse_metrics(self.settings)),
            "feast": self._read_feast,
            "mlflow": lambda: _mlflow_metrics(self.settings),
        }
        cached = {"warehouse", "feast", "mlflow"}
        # A disabled source is not opened, not reported (no source_up, no duration) and not logged.
        enabled = set(self.settings.monitoring.exporter_sources)
        for source in (s for s in SOURCES if s in enabled):
            read = readers[source]
            started = time.perf_counter()
            hit = self._cache.get(source)
            try:
                if source in cached and hit is not None and now - hit[0] < self.cache_seconds:
                    metrics = hit[1]
                else:
                    metrics = read()
                    if source in cached:
                        self._cache[source] = (now, metrics)
                ok = 1.0
                if self._errors.pop(source, None) is not None:
                    log.warning("%s is readable again", source)
            except Exception as exc:
                # One warning when a source becomes unreadable (or its error changes), not one per scrape:
                # a missing store would otherwise fill the log at every scrape interval.
                error = repr(exc)
                level = logging.DEBUG if self._errors.get(source) == error else logging.WARNING
                self._errors[source] = error
                log.log(level, "cannot read %s: %s", source, error, exc_info=log.isEnabledFor(logging.DEBUG))
                if source == "dagster":
                    self._dagster.dispose()
                if source == "feast":
                    self._feast_store = None
                # The last good read stays exported (its age grows; source_up = 0 marks it stale).
                metrics, ok = (hit[1] if hit is not None else []), 0.0
            up.add_metric([source], ok)
            duration.add_metric([source], time.perf_counter() - started)
            yield from metrics
        yield from _threshold_metrics(self.settings)
        yield from alert_thresholds(self.settings)
        yield up
        yield duration

    def _read_feast(self) -> list[Metric]:
        path = _feast_registry_path(self.settings)
        if path is not None and not path.exists():
            raise FileNotFoundError(f"no Feast registry at {path}")
        if self._feast_store is None:
            from hybridops.features.store import feature_store

            self._feast_store = feature_store(self.settings)
        return _feast_metrics(self.settings, self._feast_store)


def exporter_registry(settings: Settings, **options: Any) -> tuple[CollectorRegistry, HybridopsCollector]:
    """A registry holding only the platform collector (no process or Python metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = HybridopsCollector(settings, **options)
    registry.register(collector)
    return registry, collector


def start_exporter(
    settings: Settings, host: str = "127.0.0.1", port: int = 9464, **options: Any
) -> tuple[WSGIServer, threading.Thread, HybridopsCollector]:
    """Serve ``/metrics`` from a background thread; returns the server, its thread and the collector
    (:func:`stop_exporter` stops both). ``options`` go to :class:`HybridopsCollector`.

    Raises:
        OSError: the address cannot be bound (the port is taken).
    """
    registry, collector = exporter_registry(settings, **options)
    # Bind first: a taken port fails at once, not after the warm-up's seconds of imports and reads.
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        collector.collect()  # warm up: a scrape arriving meanwhile waits for it on the collector's lock
    except BaseException:
        stop_exporter(server, collector)
        raise
    return server, thread, collector


def stop_exporter(server: WSGIServer, collector: HybridopsCollector) -> None:
    """Stop serving, release the port (``shutdown`` alone keeps the socket open) and the stores."""
    server.shutdown()
    server.server_close()
    collector.close()


def serve_exporter(settings: Settings, host: str = "127.0.0.1", port: int = 9464) -> None:
    """Serve ``http://host:port/metrics`` until interrupted (``hybridops exporter``)."""
    server, thread, collector = start_exporter(settings, host, port)
    try:
        while thread.is_alive():
            thread.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        stop_exporter(server, collector)
