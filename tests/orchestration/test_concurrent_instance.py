"""Several processes open one fresh local Dagster instance at once (what several run pods on one volume do).

Each process prepares the same new ``HYBRIDOPS_HOME``, opens the instance and executes a small job through
Dagster's public API; all must succeed, and every run and its events must be visible afterwards. The
processes import first and then start together on a signal, so they race on creating the instance's files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log import SqliteEventLogStorage

from hybridops.orchestration.instance import instance_env
from hybridops.orchestration.storage import (
    LocalEventLogStorage,
    StorageAdapterError,
    check_dagster_version,
)
from hybridops.settings import Settings

PROCESSES = 4

_WORKER = r"""
import os, sys
from pathlib import Path
import dagster as dg
from hybridops.orchestration.instance import instance_env
from hybridops.settings import Settings

@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="numbers")])
def numbers():
    yield dg.MaterializeResult(metadata={"worker": int(sys.argv[2])})
    yield dg.AssetCheckResult(check_name="positive", passed=True)

print("ready", flush=True)
sys.stdin.readline()  # everyone starts together
os.environ.update(instance_env(Settings(home=Path(sys.argv[1]))))
with dg.DagsterInstance.get() as instance:
    result = dg.materialize([numbers], instance=instance, tags={"worker": sys.argv[2]})
    print("run", result.run_id, result.success, flush=True)
"""


def _race(home: Path) -> list[subprocess.CompletedProcess[str]]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(home), str(i)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        done = []
        for worker in workers:
            out, err = worker.communicate(timeout=180)
            done.append(subprocess.CompletedProcess(worker.args, worker.returncode, out, err))
        return done
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()


def test_processes_share_a_fresh_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    finished = _race(home)
    for worker in finished:
        assert worker.returncode == 0, worker.stderr[-3000:]
    run_ids = {
        line.split()[1]
        for worker in finished
        for line in worker.stdout.splitlines()
        if line.startswith("run ")
    }
    assert len(run_ids) == PROCESSES

    for key, value in instance_env(Settings(home=home)).items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert {run.run_id for run in runs} == run_ids
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        assert sorted(run.tags["worker"] for run in runs) == [str(i) for i in range(PROCESSES)]
        for run_id in run_ids:
            materialized = instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
            assert len(materialized) == 1
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("numbers"), "positive"), limit=10
        )
        assert len(checks) == PROCESSES
    # Nothing half-built is left beside the databases.
    leftovers = [p for p in (home / "dagster").rglob(".*") if p.name != ".gitignore"]
    assert leftovers == []


def test_another_dagster_release_is_refused() -> None:
    check_dagster_version(dg.__version__)
    with pytest.raises(StorageAdapterError, match=r"dagster==1\.13\.27"):
        check_dagster_version("1.14.0")


def test_an_event_that_does_not_read_back_the_same_fails_loudly(tmp_path: Path) -> None:
    """The start-up read-back compares what the tuned storage wrote with Dagster's public reader."""

    class Lossy(LocalEventLogStorage):
        def store_event(self, event: dg.EventLogEntry) -> None:  # a write that silently goes nowhere
            self._read_back(event)

    storage = Lossy(str(tmp_path / "runs"))
    entry = dg.EventLogEntry(
        error_info=None,
        level="INFO",
        user_message="probe",
        run_id="0" * 36,
        timestamp=1.0,
        step_key=None,
        job_name="probe",
        dagster_event=None,
    )
    try:
        with pytest.raises(StorageAdapterError, match="reads back as None"):
            storage.store_event(entry)
        LocalEventLogStorage.store_event(storage, entry)  # the real write reads back equal
    finally:
        storage.dispose()


def test_the_read_back_finds_its_event_when_another_process_wrote_after_it(tmp_path: Path) -> None:
    """A process's first event may be followed at once by another process's events of the same run (the UI
    terminating a run while its worker writes): the read-back is not fooled by them."""

    def entry(message: str, kind: dg.DagsterEventType) -> dg.EventLogEntry:
        event = dg.DagsterEvent(event_type_value=kind.value, job_name="probe", message=message)
        return dg.EventLogEntry(
            error_info=None,
            level="INFO",
            user_message=message,
            run_id="1" * 36,
            timestamp=1.0,
            step_key=None,
            job_name="probe",
            dagster_event=event,
        )

    mine, theirs = (
        entry("canceling", dg.DagsterEventType.RUN_CANCELING),
        entry("step", dg.DagsterEventType.RUN_START),
    )

    class Raced(LocalEventLogStorage):
        def _read_back(self, event: dg.EventLogEntry) -> None:
            # The other process's events, stored between this one's write and its read-back.
            for other in (theirs, theirs._replace(dagster_event=None)):
                SqliteEventLogStorage.store_event(self, other)
            super()._read_back(event)

    storage = Raced(str(tmp_path / "runs"))
    try:
        storage.store_event(mine)
    finally:
        storage.dispose()


def test_instance_folder_written_by_several_processes_is_one_yaml(tmp_path: Path) -> None:
    code = "import sys; from pathlib import Path; from hybridops.orchestration.instance import prepare_dagster_home; from hybridops.settings import Settings; prepare_dagster_home(Settings(home=Path(sys.argv[1])))"
    home = tmp_path / "home"
    workers = [
        subprocess.Popen([sys.executable, "-c", code, str(home)], env=os.environ) for _ in range(PROCESSES)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0] * PROCESSES
    files = sorted(p.name for p in (home / "dagster").iterdir())
    assert files == ["dagster.yaml"]
