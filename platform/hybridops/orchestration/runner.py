"""Run the hybrid pipeline on the local Dagster instance and gather the run summary.

The code location is loaded by module name, as the Dagster CLI does, so this module (and the CLI that
calls it) never imports Dagster definitions at import time. The runs go to the instance under
``HYBRIDOPS_HOME``; the months become the instance's monthly partitions, consecutive months are one run
(a partition range executed in-process, whatever the backfill policy of launched backfills), and the UI
shows every month's materialization and each run's checks.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol

from hybridops.orchestration.instance import CODE_LOCATION_MODULE, instance_env
from hybridops.orchestration.interrupts import stderr_to, was_interrupted
from hybridops.orchestration.run_plan import (
    SCORING_JOB,
    TRAINING_JOB,
    PlannedRun,
    key_ordered_spans,
    plan_runs,
)
from hybridops.orchestration.run_results import _collect
from hybridops.orchestration.summary import LoopDecisionSummary, RunSummary, SpcViolationSummary
from hybridops.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

LOOP_MODULE = "dagster_project.monitoring"
PARTITIONS_MODULE = "dagster_project.partitions"
# What the training, scoring and monitoring steps import (the code location loads without them).
ML_MODULES = (
    "hybridops.training.train",
    "hybridops.training.tracking",
    "hybridops.registry",
    "hybridops.inference.batch",
    "hybridops.monitoring.drift",
    "hybridops.monitoring.performance",
)


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def step(self, label: str) -> None: ...

    def done(self, label: str, status: str = "success") -> None:
        """``status``: ``success``, ``blocked`` or ``failed`` (the run summary's status after the step)."""
        ...


class _Silent:
    def start(self, total: int) -> None:
        pass

    def step(self, label: str) -> None:
        pass

    def done(self, label: str, status: str = "success") -> None:
        pass


def load_definitions() -> dg.Definitions:
    """The hybrid code location's definitions, loaded as Dagster loads them (``@dg.definitions``)."""
    module = importlib.import_module(CODE_LOCATION_MODULE)
    return module.defs()


def register_months(instance: dg.DagsterInstance, months: list[str]) -> list[str]:
    """Add ``months`` to the instance's monthly partitions (the keys grow with the data)."""
    partitions = importlib.import_module(PARTITIONS_MODULE)
    return partitions.add_months(instance, months)


def run_config_for(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {"home": str(settings.home_dir)}
    if settings.source_dir:
        config["source_dir"] = str(settings.source_dir.expanduser().resolve())
    # Dagster's console logger defaults to DEBUG; the CLI shows its own progress instead.
    return {
        "resources": {"hybridops": {"config": config}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }


class _Pipeline:
    """Executes planned runs on one instance and folds their results into the summary."""

    def __init__(
        self, settings: Settings, summary: RunSummary, progress: Progress, freeze: bool = True
    ) -> None:
        import dagster as dg

        self.settings = settings
        self.summary = summary
        self.progress = progress
        self.freeze = freeze  # freeze what earlier runs left before each run (see run_pipeline)
        self.log = _open_event_log(settings, summary)
        with contextlib.redirect_stderr(self.log):
            self.defs = load_definitions()
        self.stage_of = _stage_by_step(self.defs)
        self.blocking = _blocking_checks(self.defs)
        self.instance = dg.DagsterInstance.get()

    def month_keys(self) -> list[str]:
        return list(self.instance.get_dynamic_partitions(importlib.import_module(PARTITIONS_MODULE).MONTHS))

    def execute(self, planned: PlannedRun) -> bool:
        """Run one job; False when the pipeline must stop (failure or blocked batch)."""
        self.progress.step(planned.label)
        job = self.defs.resolve_job_def(planned.job)
        config = run_config_for(self.settings)
        config.update(planned.run_config)
        args = planned.execution_args()
        if self.freeze:
            gc.freeze()
        with stderr_to(self.log):  # Dagster's console log and its helpers': to the file, not the terminal
            result = job.execute_in_process(
                run_config=config,
                instance=self.instance,
                partition_key=args["partition_key"],
                raise_on_error=False,
                tags={"hybridops/launched_by": "hybridops run", **args["tags"]},
            )
        if was_interrupted(result):  # Ctrl-C: the run is recorded as failed; the pipeline stops here
            raise KeyboardInterrupt
        _collect(self.summary, result, planned, self.instance, self.stage_of, self.blocking)
        self.progress.done(planned.label, self.summary.status)
        return self.summary.status == "success"


def _open_event_log(settings: Settings, summary: RunSummary) -> IO[str]:
    """``<home>/logs/run-<time>-<pid>.log``: Dagster's event log (errors with framework stack frames) and
    library warnings of the run. The terminal gets the summary, which says first what blocked or failed and
    names this file."""
    path = settings.home_dir / "logs" / f"run-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary.log_path = str(path)
    # Where the quarantine table lives: the DuckDB file, or the lakehouse's catalog (credentials left out).
    summary.warehouse_path = (
        str(settings.warehouse_db)
        if settings.warehouse.backend == "duckdb"
        else f"{settings.warehouse_catalog_url.split('@')[-1]} (lakehouse catalog)"
    )
    return path.open("a", encoding="utf-8")


def run_pipeline(settings: Settings, months: list[str], progress: Progress | None = None) -> RunSummary:
    """:func:`_run_pipeline` with libraries' deprecation warnings silenced while it runs, and only then."""
    with warnings.catch_warnings():
        if not sys.warnoptions:
            # Feast turns deprecation warnings back on when imported; they are for library maintainers,
            # not for people running the pipeline (an explicit -W option still wins). Scoped: the caller's
            # filters are as they were once the pipeline returns.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
        return _run_pipeline(settings, months, progress)


def _run_pipeline(settings: Settings, months: list[str], progress: Progress | None = None) -> RunSummary:
    """Materialize the graph for ``months`` and return what happened.

    Data first (dimensions, each month, the report); then, once two months are loaded, the ML team's half:
    training and the gate, scoring and monitoring of the months after the training window, and the
    retraining loop. A failed run or a failed blocking check stops everything after it: a blocked batch
    must not feed the report, the feature store or the model with partial data.
    """
    progress = progress or _Silent()
    os.environ.update(instance_env(settings))
    started = time.perf_counter()
    summary = RunSummary(status="success", months=months)
    # Loading the code location builds ~400k objects that live as long as the pipeline and almost no
    # garbage: the cyclic collector would walk them again and again while they load (~1 s), and at every
    # full collection of the runs after. So no collection while they load, and then they are frozen
    # (the collector ignores them) until the pipeline ends; each run freezes what earlier runs left
    # (the ML libraries imported by training). Unfrozen at the end: a long-lived caller (tests, a
    # notebook) frees them as usual. Over the year, full collections went from ~2.5 s to ~0.3 s. A caller
    # that froze objects of its own gets nothing frozen (unfreezing can only release everything).
    freeze = gc.get_freeze_count() == 0
    with _collector_paused():
        pipeline = _Pipeline(settings, summary, progress, freeze=freeze)
    # The monthly runs' feature steps use Feast, which the code location no longer imports: imported here
    # with the collector off, as it was with the code location, rather than inside the first step.
    _import_uncollected(("feast",))
    from hybridops.warehouse.db import kept_open

    try:
        # Every step of every run opens the warehouse; kept open, each open is a cursor, not a new database.
        with kept_open(settings):
            register_months(pipeline.instance, months)
            keys = pipeline.month_keys()
            data_runs = plan_runs(months, keys)
            progress.start(len(data_runs) + 1)
            if all(pipeline.execute(planned) for planned in data_runs):
                _run_ml(pipeline, months)
    finally:
        pipeline.instance.dispose()
        pipeline.log.close()
        if freeze:
            gc.unfreeze()
    summary.stage_seconds["orchestration"] = round(
        max(0.0, time.perf_counter() - started - sum(summary.stage_seconds.values())), 3
    )
    summary.total_seconds = round(time.perf_counter() - started, 3)
    _add_alarms(summary, settings, months)
    return summary


def _run_ml(pipeline: _Pipeline, months: list[str]) -> None:
    from hybridops.warehouse.db import connect, read_frame

    settings, summary = pipeline.settings, pipeline.summary
    with connect(settings, read_only=True) as con:
        loaded = read_frame(con, "select distinct month_key from fct_flights order by 1")[
            "month_key"
        ].tolist()
    if len(loaded) < 2:
        summary.notes.append(
            f"MLOps stages skipped: training needs two loaded months (a train month and a holdout); "
            f"loaded: {', '.join(loaded) or 'none'}"
        )
        return
    _import_uncollected(ML_MODULES)
    if (
        not pipeline.execute(PlannedRun(TRAINING_JOB))
        or summary.model is None
        or summary.model.version is None
    ):
        return
    scoring = [month for month in summary.model.score_months if month in months]
    # Consecutive score months are one run (a partition range): one model load, one feature retrieval and
    # one drift reference for all of them.
    keys = pipeline.month_keys()
    spans = key_ordered_spans(scoring, keys)
    pipeline.progress.start(len(plan_runs(months, keys)) + 1 + len(spans))  # data runs, training, scoring
    for first, last in spans:
        if not pipeline.execute(PlannedRun(SCORING_JOB, first, last_partition=last)):
            return

    loop = importlib.import_module(LOOP_MODULE)
    decision = loop.evaluate_loop(pipeline.instance, settings)
    summary.drift.retrain_triggered = decision.retrain
    summary.drift.retrain_reason = decision.why
    entry = LoopDecisionSummary(month=decision.holdout_month, triggered=decision.retrain, reason=decision.why)
    if decision.retrain:
        request = loop.retrain_request(decision)
        retrain = PlannedRun(TRAINING_JOB, None, dict(request.run_config), dict(request.tags))
        pipeline.execute(retrain)
        summary.drift.retrain_run_id = summary.run_ids[-1]
        gate = summary.drift.retrain_model
        if gate is not None:
            entry.promoted = gate.promoted
            entry.candidate_auc = gate.candidate_metrics.get("auc")
            entry.champion_auc = gate.metrics.get("auc")
    summary.loop.append(entry)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic collection inside the block; the collector's state is restored after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _import_uncollected(modules: tuple[str, ...]) -> None:
    """Import ``modules`` with the cyclic collector off (see ``run_pipeline``); the next run freezes them.

    A module that fails to import is left to the step that needs it, which reports the error.
    """
    with _collector_paused():
        for name in modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)


def _stage_by_step(defs: dg.Definitions) -> dict[str, str]:
    graph = defs.resolve_asset_graph()
    stages: dict[str, str] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        stages[key.to_python_identifier()] = node.group_name or "default"
    return stages


def _blocking_checks(defs: dg.Definitions) -> set[tuple[dg.AssetKey, str]]:
    return {
        (spec.asset_key, spec.name)
        for assets_def in defs.assets or ()
        for spec in getattr(assets_def, "check_specs", ())
        if spec.blocking
    }


def _add_alarms(summary: RunSummary, settings: Settings, months: list[str]) -> None:
    """The months' SPC violations (one row per run of points) and their alarms (one per cause)."""
    from hybridops.orchestration.alarms import monitoring_alarms, spc_alarms
    from hybridops.warehouse.db import connect, exists, read_frame, table_exists

    if not exists(settings):
        return
    with connect(settings, read_only=True) as con:
        if table_exists(con, "spc_violations"):
            frame = read_frame(
                con,
                "select month_key, cast(day as varchar) as day, metric, rule, severity, value, detail "
                "from spc_violations where list_contains(?, month_key) order by day, metric, rule",
                [months],
            )
            summary.spc_violations = [SpcViolationSummary(**row) for row in frame.to_dict(orient="records")]
        summary.alarms = [
            *spc_alarms(con, months),
            *monitoring_alarms(con, months, settings.monitoring),
        ]
