"""deploy / status / rollback against an HTTP double of the Kubernetes API (and a real cluster if one is set)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hybridops.deploy import chart, cluster

sys.path.insert(0, str(Path(__file__).parent))
from k8s_double import K8sDouble, running

NS = "team-a"
RELEASE = "hybridops"
HYBRIDOPS = Path(sys.executable).with_name("hybridops")
SECRETS = f"/api/v1/namespaces/{NS}/secrets"


@pytest.fixture
def double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[K8sDouble]:
    with running() as fake:
        monkeypatch.setenv("KUBECONFIG", str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
        yield fake


def _deploy(values_files: list[Path] | None = None, wait: float = 1.0) -> cluster.DeployReport:
    api = cluster.connect()
    return cluster.deploy(
        api, "dataops", values_files or [], NS, RELEASE, wait_seconds=wait, poll_seconds=0.05
    )


def _revision(double: K8sDouble, number: int) -> dict:
    secret = double.get(f"{SECRETS}/hybridops-release-{RELEASE}-v{number}")
    assert secret is not None, f"revision {number} not recorded"
    return secret


def _revision_objects(double: K8sDouble, number: int) -> list[dict]:
    data = _revision(double, number)["data"]
    return [doc for doc in yaml.safe_load_all(cluster._unpack(data["manifests"])) if doc]


def _names(objects: list[dict]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def test_deploy_applies_every_rendered_object_in_the_namespace_and_records_revision_1(
    double: K8sDouble,
) -> None:
    report = _deploy()

    expected = _names(chart.manifests(chart.render("dataops", namespace=NS, release=RELEASE)))
    applied = double.applied()
    chart_objects = [(p, b) for p, b in applied if not b["metadata"]["name"].startswith("hybridops-release-")]
    assert _names([b for _, b in chart_objects]) == expected
    assert len(chart_objects) == len(expected) == report.applied
    for path, body in chart_objects:
        assert f"/namespaces/{NS}/" in path and body["metadata"]["namespace"] == NS
    assert double.get(f"/api/v1/namespaces/{NS}") is not None  # created because it was missing

    secret = _revision(double, 1)
    labels = secret["metadata"]["labels"]
    assert labels == {"owner": "hybridops", "release": RELEASE, "revision": "1", "status": "deployed"}
    assert _names(_revision_objects(double, 1)) == expected
    values = yaml.safe_load(cluster._unpack(secret["data"]["values"]))
    assert values["mlflow"] == {"enabled": False}

    assert report.revision == 1 and report.ready
    workloads = {(w.kind, w.name) for w in report.workloads}
    assert workloads == {n for n in expected if n[0] in ("Deployment", "StatefulSet")}
    assert all(w.ready and not w.reasons for w in report.workloads)


def test_a_rollout_that_never_becomes_ready_returns_at_the_deadline_with_the_reason(
    double: K8sDouble,
) -> None:
    webserver = f"{RELEASE}-dagster-webserver"
    rendered = chart.manifests(chart.render("dataops", namespace=NS, release=RELEASE))
    labels = next(o for o in rendered if o["metadata"]["name"] == webserver)["spec"]["selector"][
        "matchLabels"
    ]
    double.not_ready = {webserver}
    double.pods = [
        {
            "metadata": {"name": f"{webserver}-7c9d-x2k4q", "labels": dict(labels)},
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "webserver",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "waiting": {
                                "reason": "ImagePullBackOff",
                                "message": 'Back-off pulling image "docker.io/hybridops/platform:0.1.0"',
                            }
                        },
                    }
                ],
            },
        }
    ]
    double.events = [
        {
            "type": "Warning",
            "reason": "Failed",
            "message": "Failed to pull image: not found",
            "involvedObject": {"kind": "Pod", "name": f"{webserver}-7c9d-x2k4q"},
            "lastTimestamp": "2025-01-01T00:00:00Z",
        }
    ]

    started = time.monotonic()
    report = _deploy(wait=1.0)
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 15
    assert not report.ready
    by_name = {w.name: w for w in report.workloads}
    stuck = by_name[webserver]
    assert not stuck.ready and stuck.ready_replicas == 0
    assert any("ImagePullBackOff" in r and "Back-off pulling image" in r for r in stuck.reasons)
    assert any("event Failed: Failed to pull image" in r for r in stuck.reasons)
    assert all(w.ready for name, w in by_name.items() if name != webserver)
    assert _revision(double, 1)["metadata"]["labels"]["status"] == "failed"


def test_upgrade_keeps_generated_passwords_and_rollback_reapplies_revision_1(
    double: K8sDouble, tmp_path: Path
) -> None:
    first = _deploy()
    postgres_secret = f"{SECRETS}/{RELEASE}-postgresql"
    postgres = f"/apis/apps/v1/namespaces/{NS}/statefulsets/{RELEASE}-postgresql"
    password = double.get(postgres_secret)["data"]["password"]  # type: ignore[index]
    checksums = double.get(postgres)["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]

    no_monitoring = tmp_path / "no-monitoring.yaml"
    no_monitoring.write_text("monitoring:\n  enabled: false\n")
    second = _deploy([no_monitoring])
    assert (first.revision, second.revision) == (1, 2)
    # an offline render generates new passwords; the live ones stay, and pods do not roll for them
    assert double.get(postgres_secret)["data"]["password"] == password  # type: ignore[index]
    assert double.get(postgres)["spec"]["template"]["metadata"]["annotations"] == checksums  # type: ignore[index]
    # objects revision 2 no longer renders are deleted
    assert double.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{RELEASE}-grafana") is None
    assert f"Deployment/{RELEASE}-grafana" in second.pruned
    assert _revision(double, 1)["metadata"]["labels"]["status"] == "superseded"

    before = len(double.applied())
    report = cluster.rollback(cluster.connect(), NS, RELEASE, wait_seconds=1, poll_seconds=0.05)

    assert report.revision == 3 and report.ready
    reapplied = [
        b for _, b in double.applied()[before:] if not b["metadata"]["name"].startswith("hybridops-release-")
    ]
    assert reapplied == _revision_objects(double, 1)
    assert _revision_objects(double, 3) == _revision_objects(double, 1)
    assert double.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{RELEASE}-grafana") is not None
    assert _revision(double, 3)["metadata"]["annotations"]["hybridops/description"] == "rollback to 1"
    assert double.get(postgres_secret)["data"]["password"] == password  # type: ignore[index]


def test_status_lists_workloads_pods_daemon_and_revisions(double: K8sDouble) -> None:
    _deploy()
    double.pods = [
        {
            "metadata": {
                "name": f"{RELEASE}-dagster-daemon-5f6-abcde",
                "labels": {"app.kubernetes.io/instance": RELEASE},
            },
            "status": {
                "phase": "Running",
                "containerStatuses": [{"name": "daemon", "ready": True, "restartCount": 2, "state": {}}],
            },
        }
    ]
    report = cluster.status(cluster.connect(), NS, RELEASE)

    names = {w.name for w in report.workloads}
    assert f"{RELEASE}-postgresql" in names and f"{RELEASE}-dagster-webserver" in names
    assert all(w.ready for w in report.workloads)
    assert report.daemon is not None and report.daemon.ready
    assert [(p.name, p.phase, p.ready, p.restarts) for p in report.pods] == [
        (f"{RELEASE}-dagster-daemon-5f6-abcde", "Running", True, 2)
    ]
    assert [(r.number, r.status, r.profile, r.description) for r in report.revisions] == [
        (1, "deployed", "dataops", "install")
    ]


def test_rollback_without_an_earlier_revision_says_so(double: K8sDouble) -> None:
    api = cluster.connect()
    with pytest.raises(cluster.DeployError, match="no revisions"):
        cluster.rollback(api, NS, RELEASE, wait_seconds=0)
    _deploy()
    with pytest.raises(cluster.DeployError, match="nothing to roll back to"):
        cluster.rollback(api, NS, RELEASE, wait_seconds=0)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HYBRIDOPS), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the CLI entry point in-process (importing the kubernetes client costs seconds per process)."""
    from hybridops.cli.app import main

    monkeypatch.setattr(sys, "argv", ["hybridops", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out + captured.err


def test_cli_without_a_cluster_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    result = _cli("deploy", "--profile", "dataops", env={"KUBECONFIG": str(tmp_path / "missing")})

    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1, output
    assert len(output.splitlines()) == 1, output
    assert "no reachable Kubernetes cluster" in output and "Traceback" not in output


@pytest.mark.parametrize("command", [["status"], ["rollback", "--to-revision", "1"]])
def test_status_and_rollback_without_a_cluster_print_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HYBRIDOPS_HOME", str(tmp_path / "home"))
    code, output = _main(monkeypatch, capsys, *command)
    lines = output.strip().splitlines()
    assert code == 1 and "Traceback" not in output, output
    assert "no reachable Kubernetes cluster: KUBECONFIG=" in lines[0]
    # status goes on to the Dagster instance, which here does not exist either: one line for that too
    if command == ["status"]:
        assert len(lines) == 2 and lines[1].startswith("hybridops: no Dagster instance at "), output
    else:
        assert len(lines) == 1, output


def test_cli_with_a_kubeconfig_whose_server_is_down_prints_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with running() as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    # the double is stopped: its port refuses connections
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HYBRIDOPS_HOME", str(tmp_path / "home"))
    code, output = _main(monkeypatch, capsys, "rollback")
    assert code == 1 and len(output.strip().splitlines()) == 1, output
    assert "does not answer" in output


def test_cli_deploy_status_and_rollback_print_tables(
    double: K8sDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HYBRIDOPS_HOME", str(tmp_path / "home"))
    code, output = _main(monkeypatch, capsys, "deploy", "--profile", "dataops", "-n", NS, "--wait", "1")
    assert code == 0, output
    assert f"{RELEASE}-dagster-daemon" in output and "revision 1" in output and "all ready" in output

    double.not_ready = {f"{RELEASE}-dagster-daemon"}
    code, output = _main(monkeypatch, capsys, "status", "-n", NS)
    assert code == 0, output
    assert f"{RELEASE}-postgresql" in output and "install" in output
    assert "Dagster daemon: not ready" in output and "no pods" in output

    code, output = _main(monkeypatch, capsys, "rollback", "-n", NS, "--to-revision", "1", "--wait", "0.2")
    assert code == 1, output  # the daemon never becomes ready
    assert "revision 2" in output and "not all ready" in output


# ---------------------------------------------------------------------------------------- real cluster


def _real_cluster() -> object:
    if not os.environ.get("KUBECONFIG"):
        pytest.fail("KUBECONFIG is not set: no real cluster to deploy to (see docs/deploy.md, kind/k3d)")
    try:
        return cluster.connect()
    except cluster.ClusterUnavailable as exc:
        pytest.fail(f"KUBECONFIG does not reach a cluster: {exc}")


# Deselected unless asked for (`pytest -m real_cluster`, tests/conftest.py): no control plane runs here.
@pytest.mark.real_cluster
def test_real_cluster_deploy_and_status() -> None:
    from kubernetes import client

    api = _real_cluster()
    namespace = f"hybridops-e2e-{uuid.uuid4().hex[:6]}"
    try:
        report = cluster.deploy(api, "dataops", [], namespace, RELEASE, wait_seconds=600)  # type: ignore[arg-type]
        assert report.ready, [(w.name, w.reasons) for w in report.workloads if not w.ready]
        shown = cluster.status(api, namespace, RELEASE)  # type: ignore[arg-type]
        assert shown.daemon is not None and shown.daemon.ready
        assert [r.number for r in shown.revisions] == [1]
    finally:
        client.CoreV1Api(api).delete_namespace(namespace)  # type: ignore[arg-type]
