"""Helpers of the orchestration fault tests: a real ``dagster-daemon`` on a temp home, runs launched through
the instance, the run's events and the warehouse's fingerprints."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from hybridops.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code_location"))
from source_builders import write_months

DAGSTER = str(Path(sys.executable).with_name("dagster"))
MODULE = "dagster_project.definitions"
PID = re.compile(r"Started process for run \(pid: (\d+)\)")


def fault_env(home: Path, source: Path, **orchestration: object) -> dict[str, str]:
    """The environment of the daemon and the CLI: this home and source, runs in one process, no sensors."""
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env |= {
        "HYBRIDOPS_HOME": str(home),
        "HYBRIDOPS_SOURCE_DIR": str(source),
        "HYBRIDOPS_ORCHESTRATION__AUTOMATION": "false",
        # Steps in the run's process: the run worker is the one process to kill, and no per-step start-up
        # of the code location on a shared 2-core machine.
        "HYBRIDOPS_ORCHESTRATION__EXECUTOR": "in_process",
        "DAGSTER_HOME": str(home / "dagster"),
        # Two days of a month: the completeness checks (every day of the month) report, not block; they
        # are not what these tests are about.
        "HYBRIDOPS_QUALITY__COMPLETENESS_SEVERITY": "warn",
    }
    env |= {f"HYBRIDOPS_ORCHESTRATION__{key.upper()}": str(value) for key, value in orchestration.items()}
    return env


def small_source(root: Path) -> Path:
    """Two days of January 2013 and the reference files, cut from the real data."""
    source = root / "source"
    write_months(source, [1], days=2)
    return source


@contextlib.contextmanager
def running_daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run`` on the code location; it and everything it started are killed at the end."""
    exe = str(Path(sys.executable).with_name("dagster-daemon"))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [exe, "run", "-m", MODULE],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the code server and run workers are in it
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def launch(env: dict[str, str], job: str, partition: str | None = None) -> str:
    """``dagster job launch``: the run is queued on the instance and the daemon launches its worker."""
    tags = ["--tags", f'{{"dagster/partition": "{partition}"}}'] if partition else []
    result = subprocess.run(
        [DAGSTER, "job", "launch", "-m", MODULE, "-j", job, *tags],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job), limit=1)
    assert runs, result.stdout + result.stderr
    return runs[0].run_id


def wait_for(
    what: str,
    predicate: Callable[[], Any],
    timeout: float,
    log: Path,
    poll: float = 0.1,
    abort: Callable[[], str | None] = lambda: None,
) -> Any:
    """``predicate()``'s first true value; fails after ``timeout`` or as soon as ``abort()`` says why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        reason = abort()
        if reason:
            raise AssertionError(f"{what}: {reason}")
        time.sleep(poll)
    tail = log.read_text(errors="replace")[-5000:] if log.exists() else ""
    raise AssertionError(f"{what} not within {timeout} s; daemon log:\n{tail}")


def events(instance: dg.DagsterInstance, run_id: str) -> list[dg.EventLogEntry]:
    return list(instance.all_logs(run_id))


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for entry in events(instance, run_id):
        found = PID.search(entry.message or "")
        if found:
            return int(found.group(1))
    return None


def started_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {e.step_key for e in events(instance, run_id) if e.dagster_event and e.dagster_event.event_type_value == "STEP_START" and e.step_key}  # fmt: skip


def succeeded_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {e.step_key for e in events(instance, run_id) if e.dagster_event and e.dagster_event.event_type_value == "STEP_SUCCESS" and e.step_key}  # fmt: skip


def materializations(instance: dg.DagsterInstance, run_ids: list[str]) -> Counter[tuple[str, str | None]]:
    """ASSET_MATERIALIZATION events of ``run_ids`` per (asset, partition)."""
    counted: Counter[tuple[str, str | None]] = Counter()
    for run_id in run_ids:
        for entry in events(instance, run_id):
            event = entry.dagster_event
            if event and event.event_type_value == "ASSET_MATERIALIZATION":
                counted[(event.asset_key.to_user_string(), event.partition)] += 1  # type: ignore[union-attr]
    return counted


def table_fingerprint(settings: Settings, table: str, where: str = "true") -> tuple[int, str]:
    """Rows and a SHA-256 of their content (sorted, independent of storage order) of a warehouse table."""
    from hybridops.warehouse.db import connect

    with connect(settings, read_only=True) as con:
        rows = con.execute(f'select * from "{table}" where {where}').fetchall()
    digest = hashlib.sha256()
    for line in sorted(repr(row) for row in rows):
        digest.update(line.encode())
    return len(rows), digest.hexdigest()


def scalar(settings: Settings, sql: str) -> Any:
    from hybridops.warehouse.db import connect

    with connect(settings, read_only=True) as con:
        return con.execute(sql).fetchall()[0][0]


def run_ended(instance: dg.DagsterInstance, run_id: str) -> Callable[[], str | None]:
    """An ``abort`` for :func:`wait_for`: the run already finished, with its last messages."""

    def ended() -> str | None:
        run = instance.get_run_by_id(run_id)
        if run is None or not run.is_finished:
            return None
        messages = [e.message for e in events(instance, run_id) if e.message][-8:]
        return f"run {run_id} ended {run.status.value}: " + " | ".join(messages)

    return ended


def wait_success(instance: dg.DagsterInstance, run_id: str, timeout: float, log: Path) -> None:
    def finished() -> dg.DagsterRun | None:
        run = instance.get_run_by_id(run_id)
        return run if run is not None and run.is_finished else None

    run = wait_for(f"run {run_id}", finished, timeout, log, poll=0.5)
    messages = [e.message for e in events(instance, run_id) if e.message][-8:]
    assert run.status == dg.DagsterRunStatus.SUCCESS, messages


def wait_status(
    instance: dg.DagsterInstance, run_id: str, status: dg.DagsterRunStatus, timeout: float, log: Path
) -> None:
    """Wait until the run has ``status`` (the run a SIGKILL ended: FAILURE once the daemon noticed)."""

    def reached() -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.status == status

    wait_for(f"run {run_id} {status.value}", reached, timeout, log)


def wait_retry(instance: dg.DagsterInstance, run_id: str, log: Path) -> dg.DagsterRun:
    """The daemon's first retry of ``run_id`` (``dagster/parent_run_id``), once it exists."""

    def retry() -> dg.DagsterRun | None:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
        return runs[0] if runs else None

    retry_run = wait_for("the retry run", retry, 120, log)
    assert retry_run.tags.get("dagster/retry_number") == "1", retry_run.tags
    return retry_run


def assert_resumed_once(
    instance: dg.DagsterInstance, run_id: str, retry_id: str, done_before: set[str], killed: str, month: str
) -> tuple[set[str], Counter[tuple[str, str | None]]]:
    """Scenario 1's verdict on a killed run and its retry: resumed, not restarted (the retry ran only what had
    not succeeded, the killed step among them), and every asset partition of the job written exactly once
    across the two runs. Returns the re-run steps and the materialization counts."""
    from dagster_project.build import build_definitions

    rerun = started_steps(instance, retry_id)
    assert killed in rerun
    assert not rerun & done_before, rerun & done_before
    counts = materializations(instance, [run_id, retry_id])
    job = build_definitions("hybrid").resolve_job_def("monthly_partition")
    job_assets = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert {asset for asset, _ in counts} == job_assets, sorted(job_assets - {a for a, _ in counts})
    assert all(partition == month for _, partition in counts), counts
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    return rerun, counts


class LateRedis:
    """A redis-server on a free loopback port that is started only when asked (the online store away)."""

    def __init__(self, workdir: Path) -> None:
        from tools import require_tool

        self.binary = require_tool("redis-server")
        self.workdir = workdir
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def keys(self) -> int:
        import redis

        return int(redis.Redis(port=self.port, socket_connect_timeout=5).dbsize())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def step_events(instance: dg.DagsterInstance, kind: str) -> list[dg.EventLogEntry]:
    """Every event of type ``kind`` (STEP_UP_FOR_RETRY, STEP_FAILURE, ...) of every run on the instance."""
    found = []
    for run in instance.get_runs():
        found += [
            e
            for e in events(instance, run.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == kind
        ]
    return found
