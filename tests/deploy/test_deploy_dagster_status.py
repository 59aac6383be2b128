"""``hybridops status``'s Dagster part against a real Dagster instance: the local SQLite instance that
``hybridops run`` uses, with real runs executed on it and daemon heartbeats written through the instance
API; and an instance that cannot be reached."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster._daemon.types import DaemonHeartbeat
from dagster._utils.error import SerializableErrorInfo

from hybridops.deploy import dagster_status
from hybridops.orchestration.instance import prepare_dagster_home
from hybridops.settings import OrchestrationSettings, Settings

sys.path.insert(0, str(Path(__file__).parent))
from deploy_postgres import closed_port, throwaway_postgres
from k8s_double import K8sDouble, running

NS = "team-a"


@dg.op
def _count() -> int:
    time.sleep(0.2)  # a measurable duration
    return 1


@dg.op
def _explode() -> None:
    raise RuntimeError("boom")


@dg.job
def tiny_success() -> None:
    _count()


@dg.job
def tiny_failure() -> None:
    _explode()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HYBRIDOPS_HOME whose Dagster instance has two real runs and three daemons' heartbeats."""
    root = tmp_path_factory.mktemp("hybridops-home")
    # Run monitoring off, so that MONITORING is a daemon the instance does not require but hears from.
    settings = Settings(home=root, orchestration=OrchestrationSettings(run_monitoring=False))
    dagster_home = prepare_dagster_home(settings)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert tiny_success.execute_in_process(instance=instance).success
        assert not tiny_failure.execute_in_process(instance=instance, raise_on_error=False).success
        now = time.time()
        error = SerializableErrorInfo("sensor tick failed", [], "RuntimeError")
        for daemon_type, age, errors in (
            ("SENSOR", 5.0, [error]),
            ("SCHEDULER", 4000.0, None),  # long dead: past Dagster's tolerance
            ("MONITORING", 12.0, None),  # not required by this dagster.yaml
        ):
            beat = DaemonHeartbeat(now - age, daemon_type, "daemon-1", errors)
            instance.add_daemon_heartbeat(beat)
    return root


def test_read_reports_runs_newest_first_with_durations(home: Path) -> None:
    report = dagster_status.read(Settings(home=home).dagster_home, limit=10)

    assert [(r.job, r.status) for r in report.runs] == [
        ("tiny_failure", "FAILURE"),
        ("tiny_success", "SUCCESS"),
    ]
    success = report.runs[1]
    assert success.started_at and success.ended_at and success.started_at <= success.ended_at
    assert success.duration_seconds is not None and 0.2 <= success.duration_seconds < 60
    assert len(success.run_id) == 36

    assert [r.job for r in dagster_status.read(Settings(home=home).dagster_home, limit=1).runs] == [
        "tiny_failure"
    ]


def test_read_reports_each_daemon_heartbeat_age_and_health(home: Path) -> None:
    report = dagster_status.read(Settings(home=home).dagster_home)
    daemons = {d.daemon_type: d for d in report.daemons}

    sensor = daemons["SENSOR"]
    assert sensor.required and sensor.healthy and sensor.errors == 1
    assert sensor.heartbeat_age_seconds is not None and 5 <= sensor.heartbeat_age_seconds < 60
    scheduler = daemons["SCHEDULER"]
    assert scheduler.required and not scheduler.healthy
    assert scheduler.heartbeat_age_seconds is not None and scheduler.heartbeat_age_seconds >= 4000
    backfill = daemons["BACKFILL"]  # required, never heard from
    assert backfill.required and not backfill.healthy and backfill.heartbeat_age_seconds is None
    monitoring = daemons["MONITORING"]
    assert not monitoring.required and monitoring.healthy
    assert not report.healthy


def test_a_missing_local_instance_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(dagster_status.InstanceUnavailable, match=r"no Dagster instance at .*hybridops run"):
        dagster_status.read(tmp_path / "dagster")
    assert not (tmp_path / "dagster").exists()  # status only reads; it creates nothing


def test_an_unreachable_postgres_instance_is_one_line_without_the_password() -> None:
    url = f"postgresql://dagster:s3cret-pw@127.0.0.1:{closed_port()}/dagster"
    started = time.monotonic()
    with pytest.raises(dagster_status.InstanceUnavailable) as raised:
        dagster_status.read(postgres_url=url)
    message = str(raised.value)
    assert time.monotonic() - started < 60
    assert "unreachable" in message and "dagster:***@127.0.0.1" in message, message
    assert "s3cret-pw" not in message and "\n" not in message


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on a loopback port: the storage a cluster's Dagster instance uses
    (the chart's default database user, so its rendered dagster.yaml can log in as is)."""
    with throwaway_postgres() as url:
        yield url


def test_read_a_postgres_instance_through_its_url(postgres_url: str) -> None:
    with dagster_status.open_instance(postgres_url=postgres_url) as located:
        assert tiny_success.execute_in_process(instance=located.instance).success
        located.instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - 3, "SENSOR", "daemon-1", None))

    report = dagster_status.read(postgres_url=postgres_url)

    assert report.instance == "postgresql://hybridops:***@127.0.0.1:" + postgres_url.rsplit(":", 1)[1]
    assert [(r.job, r.status) for r in report.runs] == [("tiny_success", "SUCCESS")]
    assert report.runs[0].duration_seconds is not None and report.runs[0].duration_seconds >= 0.2
    sensor = next(d for d in report.daemons if d.daemon_type == "SENSOR")
    assert sensor.healthy and sensor.heartbeat_age_seconds is not None and sensor.heartbeat_age_seconds >= 3


def test_the_charts_instance_storage_config_runs_a_job_on_postgres(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart's dagster.yaml storage, pointed at the throwaway server, works with the drivers installed
    next to Dagster (a bare postgresql:// would pick psycopg 3 and fail writing the event log)."""
    from dagster._core.instance.ref import InstanceRef

    from hybridops.deploy import chart

    rendered = chart.manifests(chart.render("dataops"))
    config_map = next(o for o in rendered if o["metadata"]["name"] == "hybridops-dagster-instance")
    storage = yaml.safe_load(config_map["data"]["dagster.yaml"])["storage"]
    port = postgres_url.rsplit(":", 1)[1].split("/")[0]
    database = storage["postgres"]["postgres_db"]
    # The chart's bundled server gives Dagster a role of its own owning its database (configmap-postgresql).
    assert (database["username"], database["db_name"]) == ("dagster", "dagster")
    connection = psycopg2.connect(postgres_url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = 'dagster'")
            if not cursor.fetchone():
                cursor.execute("CREATE ROLE dagster LOGIN")
                cursor.execute("CREATE DATABASE dagster OWNER dagster")
    finally:
        connection.close()
    database.update({"hostname": "127.0.0.1", "port": int(port)})
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused")  # the ConfigMap reads it from the environment
    ref = InstanceRef.from_dir(str(tmp_path), overrides={"storage": storage, "telemetry": {"enabled": False}})
    with dg.DagsterInstance.from_ref(ref) as instance:
        result = tiny_failure.execute_in_process(instance=instance, raise_on_error=False)
        records = instance.get_run_records()
        logs = instance.all_logs(result.run_id)
    newest = records[0].dagster_run
    assert (newest.job_name, newest.status.value) == ("tiny_failure", "FAILURE")
    assert any(e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE" for e in logs)


# ------------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[K8sDouble]:
    with running() as fake:
        monkeypatch.setenv("KUBECONFIG", str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
        yield fake


def _main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    from hybridops.cli.app import main

    monkeypatch.setattr(sys, "argv", ["hybridops", *args])
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("HYBRIDOPS_DAGSTER_POSTGRES_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def test_status_prints_runs_and_heartbeats_after_the_cluster_tables(
    double: K8sDouble, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HYBRIDOPS_HOME", str(home))
    code, out, err = _main(monkeypatch, capsys, "status", "-n", NS)

    assert code == 0, out + err
    assert out.index("revisions") < out.index("last Dagster runs") < out.index("Dagster daemon heartbeats")
    assert "tiny_success" in out and "SUCCESS" in out and "tiny_failure" in out and "FAILURE" in out
    assert "SCHEDULER" in out and "unhealthy" in out and "never" in out


def test_status_without_a_cluster_still_shows_dagster_and_exits_1(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HYBRIDOPS_HOME", str(home))
    code, out, err = _main(monkeypatch, capsys, "status", "--runs", "1")

    assert code == 1
    assert err.strip().startswith("hybridops: no reachable Kubernetes cluster") and len(err.splitlines()) == 1
    assert "tiny_failure" in out and "tiny_success" not in out  # --runs 1
    assert "Traceback" not in out + err


def test_status_json_reports_both_parts_and_each_failure_in_one_field(
    double: K8sDouble,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HYBRIDOPS_HOME", str(home))
    code, out, err = _main(monkeypatch, capsys, "status", "-n", NS, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["cluster"]["namespace"] == NS and "workloads" in document["cluster"]
    runs = document["dagster"]["runs"]
    assert [(r["job"], r["status"]) for r in runs] == [
        ("tiny_failure", "FAILURE"),
        ("tiny_success", "SUCCESS"),
    ]
    assert runs[1]["duration_seconds"] >= 0.2 and runs[1]["started_at"] <= runs[1]["ended_at"]
    daemons = {d["daemon_type"]: d for d in document["dagster"]["daemons"]}
    assert daemons["SENSOR"]["healthy"] is True and daemons["SENSOR"]["heartbeat_age_seconds"] >= 5
    assert daemons["SCHEDULER"]["healthy"] is False

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HYBRIDOPS_HOME", str(tmp_path / "empty"))
    code, out, err = _main(monkeypatch, capsys, "status", "--json")
    assert code == 1 and err == ""
    document = json.loads(out)
    assert document["cluster"]["error"].startswith("no reachable Kubernetes cluster")
    assert document["dagster"]["error"].startswith("no Dagster instance at")


def test_status_with_an_unreachable_instance_says_so_in_one_line(
    double: K8sDouble, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://dagster:pw@127.0.0.1:{closed_port()}/dagster"
    code, out, err = _main(monkeypatch, capsys, "status", "-n", NS, "--dagster-postgres-url", url)

    assert code == 0, err  # the cluster answered; the instance is reported, not fatal
    assert "revisions" in out
    assert len(err.strip().splitlines()) == 1 and "Dagster instance" in err and "unreachable" in err, err
    assert ":pw@" not in err and "Traceback" not in err
