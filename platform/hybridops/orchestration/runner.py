"""Run the hybrid pipeline on the local Dagster instance and gather the run summary.

The code location is loaded by module name, as the Dagster CLI does, so this module (and the CLI that
calls it) never imports Dagster definitions at import time. Every partition is its own Dagster run on the
instance under ``HYBRIDOPS_HOME``: the UI shows each of them with its checks and metadata.
"""

from __future__ import annotations

import importlib
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from hybridops.orchestration.instance import CODE_LOCATION_MODULE, instance_env
from hybridops.orchestration.summary import CheckSummary, RunSummary, SpcViolationSummary
from hybridops.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

DIMENSIONS_JOB = "dimensions"
MONTHLY_JOB = "monthly_partition"
REPORT_JOB = "report"


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def step(self, label: str) -> None: ...

    def done(self, label: str) -> None: ...


class _Silent:
    def start(self, total: int) -> None:
        pass

    def step(self, label: str) -> None:
        pass

    def done(self, label: str) -> None:
        pass


@dataclass(frozen=True)
class PlannedRun:
    job: str
    partition: str | None

    @property
    def label(self) -> str:
        return f"{self.job} {self.partition}" if self.partition else self.job


def plan_runs(months: list[str]) -> list[PlannedRun]:
    """Dimensions first (they are the references of every month), then each month, then the report."""
    return [
        PlannedRun(DIMENSIONS_JOB, None),
        *(PlannedRun(MONTHLY_JOB, month) for month in months),
        PlannedRun(REPORT_JOB, None),
    ]


def load_definitions() -> dg.Definitions:
    module = importlib.import_module(CODE_LOCATION_MODULE)
    return module.defs


def run_config_for(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {"home": str(settings.home_dir)}
    if settings.source_dir:
        config["source_dir"] = str(settings.source_dir.expanduser().resolve())
    # Dagster's console logger defaults to DEBUG; the CLI shows its own progress instead.
    return {
        "resources": {"hybridops": {"config": config}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }


def run_pipeline(settings: Settings, months: list[str], progress: Progress | None = None) -> RunSummary:
    """Materialize the graph for ``months`` and return what happened.

    A failed run or a failed blocking check stops the months after it: a blocked batch must not feed the
    report or the feature store with partial data.
    """
    import dagster as dg

    progress = progress or _Silent()
    os.environ.update(instance_env(settings))
    started = time.perf_counter()
    defs = load_definitions()
    stage_of = _stage_by_step(defs)
    blocking = _blocking_checks(defs)
    summary = RunSummary(status="success", months=months)
    plan = plan_runs(months)
    progress.start(len(plan))
    with dg.DagsterInstance.get() as instance:
        for planned in plan:
            progress.step(planned.label)
            job = defs.resolve_job_def(planned.job)
            result = job.execute_in_process(
                run_config=run_config_for(settings),
                instance=instance,
                partition_key=planned.partition,
                raise_on_error=False,
                tags={"hybridops/launched_by": "hybridops run"},
            )
            _collect(summary, result, planned, instance, stage_of, blocking)
            progress.done(planned.label)
            if summary.status != "success":
                break
    summary.stage_seconds["orchestration"] = round(
        max(0.0, time.perf_counter() - started - sum(summary.stage_seconds.values())), 3
    )
    summary.total_seconds = round(time.perf_counter() - started, 3)
    _add_spc_violations(summary, settings, months)
    return summary


def _stage_by_step(defs: dg.Definitions) -> dict[str, str]:
    graph = defs.resolve_asset_graph()
    stages: dict[str, str] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        stages[key.to_python_identifier()] = node.group_name or "default"
    return stages


def _collect(
    summary: RunSummary,
    result: dg.ExecuteInProcessResult,
    planned: PlannedRun,
    instance: dg.DagsterInstance,
    stage_of: dict[str, str],
    blocking: set[tuple[dg.AssetKey, str]],
) -> None:
    summary.run_ids.append(result.run_id)
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        metadata: dict[str, Any] = {key: value.value for key, value in materialization.metadata.items()}
        summary.rows_ingested += int(metadata.get("rows_read", 0) or 0)
        quarantined = int(metadata.get("rows_quarantined", 0) or 0)
        if quarantined:
            table = materialization.asset_key.to_user_string()
            summary.quarantined_by_table[table] = summary.quarantined_by_table.get(table, 0) + quarantined
            summary.rows_quarantined += quarantined
        summary.features_materialized += int(metadata.get("features_materialized", 0) or 0)
        summary.warehouse_rows += int(metadata.get("warehouse_rows", 0) or 0)
        if "report_html" in metadata:
            summary.report_path = str(metadata["report_html"])

    for evaluation in result.get_asset_check_evaluations():
        check = CheckSummary(
            asset=evaluation.asset_key.to_user_string(),
            name=evaluation.check_name,
            passed=evaluation.passed,
            severity="ERROR" if evaluation.severity.value == "ERROR" else "WARN",
            partition=planned.partition,
            blocking=(evaluation.asset_key, evaluation.check_name) in blocking,
            message=evaluation.description or "",
        )
        summary.checks.append(check)
        # Dagster blocks downstream only on ERROR; a WARN result of a blocking check is informational.
        if check.blocking and not check.passed and check.severity == "ERROR":
            summary.status = "blocked"
            where = f" ({planned.partition})" if planned.partition else ""
            summary.problems.append(f"{check.asset}.{check.name}{where}: {check.message or 'failed'}")

    if not result.success and summary.status == "success":
        summary.status = "failed"
    for failure in result.get_step_failure_events():
        data = failure.step_failure_data
        if data.error and data.error.cls_name == "DagsterAssetCheckFailedError":
            continue  # the failing blocking check is already reported, with its own message
        message = (data.user_failure_data.description if data.user_failure_data else None) or (
            data.error.message.strip() if data.error else "step failed"
        )
        summary.problems.append(f"{failure.step_key}: {message}")

    seconds: dict[str, float] = defaultdict(float)
    for stats in instance.get_run_step_stats(result.run_id):
        if stats.start_time and stats.end_time:
            seconds[stage_of.get(stats.step_key, "other")] += stats.end_time - stats.start_time
    for stage, value in seconds.items():
        summary.stage_seconds[stage] = round(summary.stage_seconds.get(stage, 0.0) + value, 3)


def _blocking_checks(defs: dg.Definitions) -> set[tuple[dg.AssetKey, str]]:
    return {
        (spec.asset_key, spec.name)
        for assets_def in defs.assets or ()
        for spec in getattr(assets_def, "check_specs", ())
        if spec.blocking
    }


def _add_spc_violations(summary: RunSummary, settings: Settings, months: list[str]) -> None:
    from hybridops.warehouse.db import connect, read_frame, table_exists

    if not settings.warehouse_db.exists():
        return
    with connect(settings.warehouse_db, read_only=True) as con:
        if not table_exists(con, "spc_violations"):
            return
        frame = read_frame(
            con,
            "select month_key, cast(day as varchar) as day, metric, rule, severity, value, detail "
            "from spc_violations where list_contains(?, month_key) order by day, metric, rule",
            [months],
        )
    summary.spc_violations = [SpcViolationSummary(**row) for row in frame.to_dict(orient="records")]
