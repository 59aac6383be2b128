"""The rehearsal: the release started on this machine, the source dropped month by month into the watched
folder, the daemon's automation alone carrying each month, and a summary of what happened.

The rehearsal launches no run itself: it writes files, sends predictions to the inference service, and
reads what the instance, the warehouse and the process table say.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pydantic import BaseModel

from hybridops.deploy.reachability import unreachable
from hybridops.rehearsal import dagster_api
from hybridops.rehearsal.kubelet import RehearsalError
from hybridops.rehearsal.observe import Sampler
from hybridops.rehearsal.postgres import MissingProgram
from hybridops.rehearsal.source import MonthlySource
from hybridops.rehearsal.stack import LONG_RUNNING, Stack, running_stack
from hybridops.rehearsal.topology import workload
from hybridops.rehearsal.traffic import Traffic, flights_payload

# The monthly assets that carry a month from its file to the online store, then to its scored predictions.
DATA_CHAIN = ("raw_flights", "flights", "fct_flights", "feature_tables", "online_features")
SCORED = "batch_predictions"  # a month is fresh when its predictions are scored
CHAIN = (*DATA_CHAIN, SCORED, "model_monitoring")
# The release's programs that come from this machine, not from the virtualenv (PostgreSQL's server is
# checked where it starts: Debian keeps it off PATH).
PROGRAMS = (
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("psql", "postgresql-client"),
    ("prometheus", "prometheus"),
)
SKEW_AUDIT_CRON = "*/5 * * * *"
WATCHED = "/data/source"  # hybridops.sourceDir of the rehearsal: a folder on the data volume


class Summary(BaseModel):
    """What the rehearsal observed (``hybridops rehearse --json``)."""

    profile: str
    warehouse_backend: str
    months_dropped: list[str]
    months_processed: list[str]  # every data asset (raw_flights .. online_features) of the month materialized
    months_scored: list[str]  # the month's predictions scored
    stages: dict[
        str, dict[str, float]
    ]  # month -> asset -> seconds from the file landing to its materialization
    time_to_fresh_seconds: dict[str, float]  # month -> seconds from the file landing to its predictions
    runs: int
    runs_by_status: dict[str, int]
    runs_by_job: dict[str, int]
    max_concurrent_run_workers: int  # sampled from the process table
    max_concurrent_runs_recorded: int  # from the runs' recorded start and end times
    lock_errors: int
    lock_error_messages: list[str]
    rows: dict[str, int]
    predictions_served: int
    prometheus_targets_up: dict[str, bool]  # scrape job -> all its targets up at the end
    prometheus_series: int  # hybridops_* series Prometheus holds (exporter and inference metrics)
    skew_rows_compared: int
    connections: list[dict[str, Any]]
    unreachable_connections: list[dict[str, Any]]  # observed connections the NetworkPolicies block
    restarts: dict[str, int]
    values: dict[str, Any]  # chart values the rehearsal set (a user's choices, not changes to the chart)
    adaptations: list[str]
    missing: list[str]
    duration_seconds: float
    ok: bool


@dataclass
class Options:
    months: list[str]
    every: int = 1  # keep every n-th flight of the source (1: the whole source)
    interval: float = 60.0  # least seconds between two drops
    timeout: float = 3600.0  # the whole rehearsal, after the stack is up
    keep: bool = False
    root: Path | None = None
    profile: str = "hybrid"
    values: dict[str, Any] | None = None


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Values ``top`` layered over ``base`` (nested mappings merged, anything else replaced)."""
    out = dict(base)
    for key, value in top.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def _env_of(objs: tuple[dict[str, Any], ...], name: str) -> dict[str, str]:
    _, container = workload(objs, "Deployment", name)
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def _warehouse_counts(stack: Stack) -> dict[str, int]:
    """fct_flights and predictions through the warehouse backend, read with a run pod's environment."""
    pod = stack.pods["dagster-user-code"]
    done = subprocess.run(
        [sys.executable, "-m", "hybridops.rehearsal.rows"],
        env=pod.env,
        cwd=pod.workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RehearsalError(f"reading the warehouse failed:\n{done.stderr[-3000:]}")
    counts: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


def _stages(stack: Stack, landed: dict[str, float]) -> dict[str, dict[str, float]]:
    """For each dropped month, each chain asset's first materialization after the month landed."""
    out: dict[str, dict[str, float]] = {month: {} for month in landed}
    for asset in CHAIN:
        for event in dagster_api.materializations(stack.graphql, asset, list(landed)):
            month = event["partition"]
            at = int(event["timestamp"]) / 1000
            if month in landed and at >= landed[month]:
                seconds = round(at - landed[month], 1)
                out[month][asset] = min(out[month].get(asset, seconds), seconds)
    return out


def _prometheus(stack: Stack) -> tuple[dict[str, bool], int]:
    """Each scrape job's health and how many hybridops_* series Prometheus scraped, from its HTTP API."""
    url = stack.url("prometheus") + "/api/v1"
    targets = requests.get(url + "/targets", timeout=30).json()["data"]["activeTargets"]
    up: dict[str, bool] = {}
    for target in targets:
        job = target["labels"]["job"]
        up[job] = up.get(job, True) and target["health"] == "up"
    series = requests.get(url + "/series", params={"match[]": '{__name__=~"hybridops_.+"}'}, timeout=60)
    return up, len(series.json()["data"])


def _skew_rows_compared(stack: Stack) -> int:
    events = dagster_api.materializations(stack.graphql, "feature_skew_audit")
    return max((int(e["metadata"].get("served_rows") or 0) for e in events), default=0)


def rehearse(options: Options, progress: Callable[[str], None] = print) -> Summary:
    """Run the rehearsal and return its summary; every process it started is stopped before it returns
    (unless ``options.keep``: then after Ctrl-C)."""
    from hybridops.deploy import chart

    for program, package in PROGRAMS:
        if shutil.which(program) is None:
            raise MissingProgram(f"{program} is not installed: apt-get install {package} (Debian package)")
    started = time.monotonic()
    root = options.root or Path(tempfile.mkdtemp(prefix="hybridops-rehearsal-"))
    adaptations = [
        "listen addresses: 127.0.0.1 on free ports; Services: loopback ports; volumes: local folders",
        "dagster.yaml run_launcher: DefaultRunLauncher (run workers are processes of the user-code server)",
    ]
    missing: list[str] = []
    # Values a user of the chart would set for this: the watched source folder on the data volume, and a
    # skew-audit cadence a short rehearsal outlives (hourly by default).
    values = {
        "hybridops": {"sourceDir": WATCHED, "config": {"orchestration": {"skew_audit_cron": SKEW_AUDIT_CRON}}}
    }
    rendered = chart.render(options.profile, overrides=_merged(values, options.values or {}))
    objs = tuple(chart.manifests(rendered))
    source_dir = _env_of(objs, "hybridops-dagster-user-code").get("HYBRIDOPS_SOURCE_DIR")
    if not source_dir:
        raise RehearsalError("the values name no source folder (hybridops.sourceDir): nothing to watch")
    backend = json.loads(_config_section(objs, "WAREHOUSE") or "{}").get("backend", "duckdb")
    if backend != "lakehouse":
        missing.append(f"the chart's warehouse backend is {backend!r}, not 'lakehouse'")
    progress(f"starting the {options.profile} release under {root}")
    try:
        with _interruptible(), running_stack(objs, root, progress) as stack:
            summary = _drive(stack, options, source_dir, progress, adaptations, missing, backend, started)
            summary.values = values
            if options.keep:
                progress(
                    f"stack left up (--keep): Dagster {stack.url('dagster-webserver')}, MLflow "
                    f"{stack.url('mlflow')}, Prometheus {stack.url('prometheus')}; Ctrl-C stops it"
                )
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    progress("stopping")
            return summary
    finally:
        if options.root is None and not options.keep:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt for the block, whatever dispositions the process inherited
    (a background job starts with SIGINT ignored), so the release is always stopped on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def interrupt(signum: int, _: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in handlers:
        signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _config_section(objs: tuple[dict[str, Any], ...], section: str) -> str | None:
    for obj in objs:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "hybridops-config":
            data: dict[str, str] = obj.get("data") or {}
            return data.get(f"HYBRIDOPS_{section}")
    return None


def _drive(
    stack: Stack,
    options: Options,
    source_dir: str,
    progress: Callable[[str], None],
    adaptations: list[str],
    missing: list[str],
    backend: str,
    started: float,
) -> Summary:
    pod = stack.pods["dagster-user-code"]
    source = MonthlySource(Path(pod.relocate(source_dir)), every=options.every)
    unknown = [m for m in options.months if m not in source.months]
    if unknown:
        raise RehearsalError(
            f"months not in the source: {', '.join(unknown)} (it holds {source.months[0]}..{source.months[-1]})"
        )
    sensors = dagster_api.sensor_states(stack.graphql)
    running = sorted(name for name, status in sensors.items() if status == "RUNNING")
    progress(f"sensors: {sensors or 'none'}")
    if not running:
        missing.append("no sensor of the code location runs by default: nothing notices a new month")
    landed: dict[str, float] = {}
    deadline = time.monotonic() + options.timeout
    pool: list[dict[str, Any]] = []

    def latest_flights() -> list[dict[str, Any]]:
        return pool

    with Sampler(stack.cluster) as sampler, Traffic(stack.url("inference"), latest_flights) as traffic:
        pending = list(options.months)
        last_drop = 0.0
        last_report = 0.0
        stages: dict[str, dict[str, float]] = {}
        while time.monotonic() < deadline:
            restarted = stack.cluster.restart_exited([n for n in LONG_RUNNING if n in stack.pods])
            if restarted:
                progress(f"restarted {restarted} (exited; a kubelet restarts them)")
            previous = source.dropped[-1] if source.dropped else None
            # The next month lands once the previous one was ingested (as a feed that waits for its
            # acknowledgement); with nothing watching the folder, on the interval alone.
            noticed = previous is None or not running or "raw_flights" in stages.get(previous, {})
            if pending and noticed and time.monotonic() - last_drop >= options.interval:
                month = pending.pop(0)
                source.drop(month)
                landed[month] = time.time()
                last_drop = time.monotonic()
                pool[:] = flights_payload(source.flights_of(month).head(2000))
                progress(f"dropped {month} into {source.target}")
            if time.monotonic() - last_report >= 15:
                last_report = time.monotonic()
                stages = _stages(stack, landed)
                done = [m for m in landed if all(a in stages[m] for a in DATA_CHAIN)]
                scored = [m for m in landed if SCORED in stages[m]]
                progress(
                    f"{round(time.monotonic() - started)} s: months dropped {len(landed)}, processed "
                    f"{len(done)}, scored {len(scored)}; "
                    f"run workers now {sampler.run_workers_now} (max {sampler.max_run_workers}); "
                    f"predictions served {traffic.predictions}; latest stages "
                    + (
                        ", ".join(
                            f"{m}: {sorted(stages[m], key=CHAIN.index)[-1:]}" for m in list(landed)[-3:]
                        )
                        or "-"
                    )
                )
                last = list(landed)[-1] if landed else None
                if (
                    not pending
                    and len(done) == len(landed)
                    and last in scored
                    and _skew_rows_compared(stack) > 0
                ):
                    break
                if not running and not pending and time.monotonic() - last_drop > 120:
                    break  # nothing watches the folder: waiting longer proves nothing more
            time.sleep(1)
        else:
            missing.append(
                f"within {options.timeout:.0f} s not every month reached the online store, the last month's "
                "predictions were not scored, or the skew audit compared no served row"
            )
        sampler.sample()

    stages = _stages(stack, landed)
    processed = [m for m in landed if all(asset in stages[m] for asset in DATA_CHAIN)]
    fresh = {m: stages[m][SCORED] for m in landed if SCORED in stages[m]}
    all_runs = dagster_api.runs(stack.graphql)
    locks = dagster_api.lock_errors(stack.graphql, [r.run_id for r in all_runs])
    by_status: dict[str, int] = {}
    by_job: dict[str, int] = {}
    for run in all_runs:
        by_status[run.status] = by_status.get(run.status, 0) + 1
        by_job[run.job] = by_job.get(run.job, 0) + 1
    skew = _skew_rows_compared(stack)
    targets_up, series = _prometheus(stack)
    connections = [c.__dict__ for c in sorted(sampler.connections)]
    blocked = [
        {**item.connection.__dict__, "reason": item.reason}
        for item in unreachable(
            stack.cluster.objs, [(c.client, c.service, c.port) for c in sorted(sampler.connections)]
        )
    ]
    summary = Summary(
        profile=options.profile,
        warehouse_backend=backend,
        months_dropped=list(landed),
        months_processed=processed,
        months_scored=list(fresh),
        stages=stages,
        time_to_fresh_seconds=fresh,
        runs=len(all_runs),
        runs_by_status=by_status,
        runs_by_job=by_job,
        max_concurrent_run_workers=sampler.max_run_workers,
        max_concurrent_runs_recorded=dagster_api.max_overlap(all_runs),
        lock_errors=len(locks),
        lock_error_messages=locks[:10],
        rows=_warehouse_counts(stack),
        predictions_served=traffic.predictions,
        prometheus_targets_up=targets_up,
        prometheus_series=series,
        skew_rows_compared=skew,
        connections=connections,
        unreachable_connections=blocked,
        restarts=dict(stack.cluster.restarts),
        values={},
        adaptations=adaptations,
        missing=missing,
        duration_seconds=round(time.monotonic() - started, 1),
        ok=False,
    )
    summary.ok = (
        summary.months_processed == summary.months_dropped == options.months
        and options.months[-1] in summary.months_scored
        and summary.max_concurrent_run_workers >= 2
        and summary.lock_errors == 0
        and summary.skew_rows_compared > 0
        and summary.unreachable_connections == []
    )
    return summary
