"""deploy / status / rollback against an HTTP double of the Kubernetes API (and a real cluster if one is set)."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import os
import re
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


def _record(double: K8sDouble, number: int, release: str = RELEASE) -> dict:
    secret = double.get(f"{SECRETS}/sh.helm.release.v1.{release}.v{number}")
    assert secret is not None, f"revision {number} not recorded"
    return secret


def _decode(secret: dict) -> dict:
    """Helm's decodeRelease, written out here: the API's base64, Helm's base64, gzip, JSON."""
    helm_value = base64.b64decode(secret["data"]["release"])
    return json.loads(gzip.decompress(base64.b64decode(helm_value)))


def _release(double: K8sDouble, number: int) -> dict:
    return _decode(_record(double, number))


def _manifest_objects(release: dict) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]


def _names(objects: list[dict]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def _is_hook(obj: dict) -> bool:
    return "helm.sh/hook" in (obj["metadata"].get("annotations") or {})


def _without_ownership(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta["labels"].pop("app.kubernetes.io/managed-by")
    for key in ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace"):
        meta["annotations"].pop(key)
    if not meta["annotations"]:
        del meta["annotations"]
    meta["labels"]["app.kubernetes.io/managed-by"] = "Helm"  # the chart's own label ({{ .Release.Service }})
    return obj


# Field names of Helm's release object (pkg/release/v1: Release, Info; pkg/chart/v2: Chart, Metadata).
HELM_RELEASE_FIELDS = {
    "name",
    "info",
    "chart",
    "config",
    "manifest",
    "hooks",
    "version",
    "namespace",
    "apply_method",
}
HELM_INFO_FIELDS = {
    "first_deployed",
    "last_deployed",
    "deleted",
    "description",
    "status",
    "notes",
    "resources",
}
HELM_CHART_FIELDS = {"metadata", "lock", "templates", "values", "schema", "files"}
HELM_METADATA_FIELDS = {
    "name", "home", "sources", "version", "description", "keywords", "maintainers", "icon", "apiVersion",
    "condition", "tags", "appVersion", "deprecated", "annotations", "kubeVersion", "dependencies", "type",
}  # fmt: skip
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_deploy_applies_every_rendered_object_and_records_a_helm_release(double: K8sDouble) -> None:
    report = _deploy()

    rendered = chart.manifests(chart.render("dataops", namespace=NS, release=RELEASE))
    expected = _names([o for o in rendered if not _is_hook(o)])  # hooks run apart (test below)
    applied = double.applied()
    assert _names([b for _, b in applied]) == expected
    assert len(applied) == len(expected) == report.applied
    for path, body in applied:
        assert f"/namespaces/{NS}/" in path and body["metadata"]["namespace"] == NS
        # Helm adopts only objects that carry its ownership metadata
        assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert body["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
        assert body["metadata"]["annotations"]["meta.helm.sh/release-namespace"] == NS
    kinds = [b["kind"] for _, b in applied]
    assert (
        kinds.index("Secret") < kinds.index("ConfigMap") < kinds.index("Service") < kinds.index("Deployment")
    )
    assert double.get(f"/api/v1/namespaces/{NS}") is not None  # created because it was missing

    secret = _record(double, 1)
    assert secret["type"] == "helm.sh/release.v1"
    labels = secret["metadata"]["labels"]
    assert {k: labels[k] for k in ("name", "owner", "status", "version")} == {
        "name": RELEASE,
        "owner": "helm",
        "status": "deployed",
        "version": "1",
    }
    assert labels["hybridops.io/profile"] == "dataops" and labels["modifiedAt"].isdigit()

    release = _decode(secret)
    assert set(release) <= HELM_RELEASE_FIELDS and {"name", "info", "chart", "manifest"} <= set(release)
    assert (release["name"], release["namespace"], release["version"]) == (RELEASE, NS, 1)
    assert release["apply_method"] == "ssa"
    info = release["info"]
    assert set(info) <= HELM_INFO_FIELDS
    assert (info["status"], info["description"]) == ("deployed", "Install complete")
    assert RFC3339.match(info["first_deployed"]) and info["first_deployed"] == info["last_deployed"]
    assert "deleted" not in info  # a zero time is omitted (Helm 4) and reads as zero in Helm 3
    assert set(release["chart"]) == HELM_CHART_FIELDS
    assert set(release["chart"]["metadata"]) <= HELM_METADATA_FIELDS
    assert release["chart"]["metadata"]["name"] == "hybridops"
    templates = {t["name"]: base64.b64decode(t["data"]).decode() for t in release["chart"]["templates"]}
    assert (
        templates["templates/statefulset-postgresql.yaml"]
        == (chart.CHART_DIR / "templates" / "statefulset-postgresql.yaml").read_text()
    )
    assert json.loads(base64.b64decode(release["chart"]["schema"]))["type"] == "object"
    assert release["config"]["mlflow"] == {"enabled": False}  # the user's values, not the chart's defaults
    # the manifest is what was applied, minus the ownership metadata applied on top, in install order
    assert release["manifest"].startswith("---\n# Source: hybridops/templates/")
    assert _manifest_objects(release) == [_without_ownership(b) for _, b in applied]

    assert report.revision == 1 and report.ready
    workloads = {(w.kind, w.name) for w in report.workloads}
    assert workloads == {n for n in expected if n[0] in ("Deployment", "StatefulSet")}
    assert all(w.ready and not w.reasons for w in report.workloads)


ROLES_JOB = f"/apis/batch/v1/namespaces/{NS}/jobs/{RELEASE}-postgresql-roles"


def test_cluster_scoped_objects_are_applied_and_pruned_outside_the_namespace(double: K8sDouble) -> None:
    """The Feast server's ClusterRoleBinding (TokenReviews) has no namespace: its API path has none either,
    on apply and when a later revision (feast.auth.mode=none) prunes it."""
    api = cluster.connect()
    cluster.deploy(api, "hybrid", [], NS, RELEASE, wait_seconds=1.0, poll_seconds=0.05)
    name = f"{NS}-{RELEASE}-feast-token-review"
    path = f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}"
    ((applied_path, body),) = [(p, b) for p, b in double.applied() if b["kind"] == "ClusterRoleBinding"]
    assert applied_path == path and "namespace" not in body["metadata"]
    assert double.get(path) is not None
    values = Path(os.environ["KUBECONFIG"]).with_name("no-auth.yaml")
    values.write_text("feast:\n  auth:\n    mode: none\n")
    report = cluster.deploy(api, "hybrid", [values], NS, RELEASE, wait_seconds=1.0, poll_seconds=0.05)
    assert f"ClusterRoleBinding/{name}" in report.pruned
    assert double.get(path) is None


def test_the_role_hook_runs_on_upgrade_not_install_and_stays_out_of_the_release(double: K8sDouble) -> None:
    """The PostgreSQL role Job (helm.sh/hook: post-upgrade,post-rollback): not applied on install, created after an
    upgrade's objects are ready, waited for, deleted when it succeeded (hook-succeeded) and before the next
    run (before-hook-creation); never in the release's manifest, so never pruned."""
    first = _deploy()
    assert first.hooks == [] and not [r for r in double.requests if "/jobs" in r[1]]
    second = _deploy()
    assert second.ready and second.hooks == [f"Job/{RELEASE}-postgresql-roles"]
    job_requests = [(method, path) for method, path, _ in double.requests if "/jobs" in path]
    assert job_requests == [
        ("DELETE", ROLES_JOB),  # before-hook-creation (nothing there yet: 404)
        ("POST", ROLES_JOB),
        ("DELETE", ROLES_JOB),  # hook-succeeded
    ]
    assert double.get(ROLES_JOB) is None
    created = next(body for method, path, body in double.requests if method == "POST" and path == ROLES_JOB)
    assert created["metadata"]["annotations"]["helm.sh/hook"] == "post-upgrade,post-rollback"
    for number in (1, 2):
        assert "Job" not in {o["kind"] for o in _manifest_objects(_release(double, number))}
    assert _release(double, 2)["info"]["status"] == "deployed"


def test_hooks_are_split_from_the_release_and_bad_ones_named() -> None:
    from hybridops.deploy import hooks, releases

    def doc(name: str, notes: dict[str, str]) -> releases.Document:
        meta = {"name": name, "annotations": notes}
        return releases.Document(
            "hybridops/templates/x.yaml", {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta}
        )

    kept, found = hooks.split([doc("plain", {}), doc("h", {"helm.sh/hook": "post-upgrade, post-install"})])
    assert [d.obj["metadata"]["name"] for d in kept] == ["plain"]
    (hook,) = found
    assert hook.events == ("post-upgrade", "post-install") and hook.weight == 0
    assert hook.delete_policies == ("before-hook-creation",)  # Helm's default
    with pytest.raises(cluster.DeployError, match=r"Job/w .*hook-weight 'soon' is not an integer"):
        hooks.split([doc("w", {"helm.sh/hook": "post-upgrade", "helm.sh/hook-weight": "soon"})])
    with pytest.raises(
        cluster.DeployError, match=r"Job/p .*hook for pre-install: hybridops deploy runs only"
    ):
        hooks.split([doc("p", {"helm.sh/hook": "pre-install"})])


def test_a_failed_hook_fails_the_upgrade_and_is_kept_for_its_logs(double: K8sDouble) -> None:
    _deploy()
    double.not_ready.add(f"{RELEASE}-postgresql-roles")
    with pytest.raises(cluster.DeployError, match="revision 2 recorded as failed"):
        _deploy()
    release = _release(double, 2)
    assert release["info"]["status"] == "failed"
    assert (
        "post-upgrade hook Job/hybridops-postgresql-roles failed: BackoffLimitExceeded"
        in (release["info"]["description"])
    )
    assert f"kubectl -n {NS} logs job/{RELEASE}-postgresql-roles" in release["info"]["description"]
    assert double.get(ROLES_JOB) is not None  # no hook-failed policy: kept for `kubectl logs`


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
    assert _record(double, 1)["metadata"]["labels"]["status"] == "failed"
    info = _release(double, 1)["info"]
    assert info["status"] == "failed"
    assert info["description"] == f'Release "{RELEASE}" failed: not ready after 1s: {webserver}'

    # an upgrade starts from the failed revision (nothing is deployed) and, when ready, supersedes nothing
    double.not_ready = set()
    second = _deploy()
    assert second.revision == 2 and second.ready
    assert [_release(double, n)["info"]["status"] for n in (1, 2)] == ["failed", "deployed"]


def test_upgrade_supersedes_and_rollback_reapplies_revision_1_as_revision_3(
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
    v1, v2 = _release(double, 1), _release(double, 2)
    assert (v1["info"]["status"], v2["info"]["status"]) == ("superseded", "deployed")
    assert _record(double, 1)["metadata"]["labels"]["status"] == "superseded"
    assert v2["info"]["description"] == "Upgrade complete"
    assert v2["info"]["first_deployed"] == v1["info"]["first_deployed"]
    assert v2["config"]["monitoring"] == {"enabled": False}

    before = len(double.applied())
    report = cluster.rollback(cluster.connect(), NS, RELEASE, wait_seconds=1, poll_seconds=0.05)

    assert report.revision == 3 and report.ready
    v3 = _release(double, 3)
    assert v3["manifest"] == v1["manifest"] and v3["config"] == v1["config"]
    assert (v3["info"]["status"], v3["info"]["description"]) == ("deployed", "Rollback to 1")
    assert [_release(double, n)["info"]["status"] for n in (1, 2, 3)] == [
        "superseded",
        "superseded",
        "deployed",
    ]
    reapplied = [_without_ownership(b) for _, b in double.applied()[before:]]
    assert reapplied == _manifest_objects(v1)
    assert double.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{RELEASE}-grafana") is not None
    assert double.get(postgres_secret)["data"]["password"] == password  # type: ignore[index]
    assert [(r.number, r.status) for r in cluster.revisions(cluster.connect(), NS, RELEASE)] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "deployed"),
    ]


def _helm_secret(release: dict, status: str) -> dict:
    """A record as Helm's secrets driver writes it (encodeRelease + newSecretsObject), built by hand."""
    raw = json.dumps(release).encode()
    helm_value = base64.b64encode(gzip.compress(raw, compresslevel=9))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": f"sh.helm.release.v1.{release['name']}.v{release['version']}",
            "namespace": release["namespace"],
            "labels": {
                "name": release["name"],
                "owner": "helm",
                "status": status,
                "version": str(release["version"]),
                "createdAt": "1764633600",
            },
        },
        "data": {"release": base64.b64encode(helm_value).decode()},
    }


def test_a_release_installed_by_helm_is_upgraded_by_hybridops_deploy_as_revision_2(double: K8sDouble) -> None:
    rendered = chart.render("dataops", namespace=NS, release=RELEASE)
    manifest = "".join(f"---\n# Source: {path}\n{text.strip()}\n" for path, text in rendered.items())
    objects = chart.manifests(rendered)
    # what `helm install` leaves: the objects (with Helm's ownership metadata) and revision 1
    for obj in objects:
        obj["metadata"].setdefault("annotations", {}).update(
            {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NS}
        )
        obj["metadata"]["generation"] = 1
        double.objects[cluster._path(obj["apiVersion"], obj["kind"], NS, obj["metadata"]["name"])] = obj
    double.objects[f"/api/v1/namespaces/{NS}"] = {"metadata": {"name": NS}}
    grafana = ("Deployment", f"{RELEASE}-grafana")
    assert grafana in _names(objects)
    helm_v1 = {
        "name": RELEASE,
        "info": {
            "first_deployed": "2026-12-01T10:00:00.123456789Z",
            "last_deployed": "2026-12-01T10:00:00.123456789Z",
            "deleted": "0001-01-01T00:00:00Z",  # Helm 3 writes zero times out
            "description": "Install complete",
            "status": "deployed",
        },
        "chart": {
            "metadata": {"name": "hybridops", "version": "0.1.0", "apiVersion": "v2"},
            "lock": None,
            "templates": [],
            "values": {},
            "schema": None,
            "files": [],
        },
        "config": {"monitoring": {"enabled": True}},
        "manifest": manifest,
        "version": 1,
        "namespace": NS,
    }
    double.objects[f"{SECRETS}/sh.helm.release.v1.{RELEASE}.v1"] = _helm_secret(helm_v1, "deployed")

    assert [
        (r.number, r.status, r.description) for r in cluster.revisions(cluster.connect(), NS, RELEASE)
    ] == [(1, "deployed", "Install complete")]
    report = cluster.deploy(cluster.connect(), "dataops", [], NS, RELEASE, wait_seconds=1, poll_seconds=0.05)

    assert report.revision == 2 and report.ready
    v1, v2 = _release(double, 1), _release(double, 2)
    assert v1["info"]["status"] == "superseded"
    assert v1["info"]["first_deployed"] == helm_v1["info"]["first_deployed"]  # Helm's fields kept as written
    assert v1["manifest"] == manifest
    assert (v2["info"]["status"], v2["info"]["description"]) == ("deployed", "Upgrade complete")
    assert v2["info"]["first_deployed"] == helm_v1["info"]["first_deployed"]
    assert _record(double, 1)["metadata"]["labels"]["status"] == "superseded"


def test_records_of_the_old_hybridops_format_are_migrated_to_helm_records(double: K8sDouble) -> None:
    objects = chart.manifests(chart.render("dataops", namespace=NS, release=RELEASE))

    def pack(text: str) -> str:
        return base64.b64encode(gzip.compress(text.encode())).decode()

    double.objects[f"/api/v1/namespaces/{NS}"] = {"metadata": {"name": NS}}
    legacy = f"{SECRETS}/hybridops-release-{RELEASE}-v1"
    double.objects[legacy] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "hybridops.io/release.v1",
        "metadata": {
            "name": f"hybridops-release-{RELEASE}-v1",
            "namespace": NS,
            "labels": {"owner": "hybridops", "release": RELEASE, "revision": "1", "status": "deployed"},
            "annotations": {
                "hybridops/profile": "dataops",
                "hybridops/deployed-at": "2026-11-30T08:00:00+00:00",
                "hybridops/description": "install",
            },
        },
        "data": {
            "manifests": pack(yaml.safe_dump_all(objects, sort_keys=False)),
            "values": pack("mlflow:\n  enabled: false\n"),
        },
    }
    # read as they are by status/history
    shown = cluster.revisions(cluster.connect(), NS, RELEASE)
    assert [(r.number, r.status, r.profile, r.description) for r in shown] == [
        (1, "deployed", "dataops", "install")
    ]

    report = _deploy()

    assert report.revision == 2 and report.ready
    assert double.get(legacy) is None
    v1 = _release(double, 1)
    assert (v1["info"]["status"], v1["info"]["last_deployed"]) == ("superseded", "2026-11-30T08:00:00Z")
    assert _names(_manifest_objects(v1)) == _names(objects) and v1["config"] == {"mlflow": {"enabled": False}}
    assert _release(double, 2)["info"]["status"] == "deployed"


def test_objects_of_another_release_are_not_taken_over(double: K8sDouble) -> None:
    name = f"{RELEASE}-dagster-workspace"
    theirs = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": NS,
            "generation": 1,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "other", "meta.helm.sh/release-namespace": NS},
        },
        "data": {"workspace.yaml": "theirs"},
    }
    path = f"/api/v1/namespaces/{NS}/configmaps/{name}"
    double.objects[path] = theirs
    with pytest.raises(
        cluster.DeployError, match=f"ConfigMap/{name} already exists in {NS} and belongs to release other"
    ):
        _deploy()
    assert double.applied() == [] and double.get(path) == theirs
    assert double.get(f"{SECRETS}/sh.helm.release.v1.{RELEASE}.v1") is None

    # once it carries this release's ownership (as after `helm install` of this release), it is adopted
    theirs["metadata"]["annotations"]["meta.helm.sh/release-name"] = RELEASE
    assert _deploy().ready and double.get(path)["data"]["workspace.yaml"] != "theirs"  # type: ignore[index]


def test_a_pending_revision_blocks_deploy_and_rollback(double: K8sDouble) -> None:
    _deploy()
    secret = _record(double, 1)
    release = _decode(secret)
    release["info"]["status"] = "pending-upgrade"
    double.objects[f"{SECRETS}/sh.helm.release.v1.{RELEASE}.v1"] = _helm_secret(release, "pending-upgrade")
    with pytest.raises(
        cluster.DeployError, match=r"another operation .* in progress .* revision 1 is pending-upgrade"
    ):
        _deploy()
    with pytest.raises(cluster.DeployError, match="in progress"):
        cluster.rollback(cluster.connect(), NS, RELEASE, to_revision=1, wait_seconds=0)


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
    assert [(r.number, r.status, r.profile, r.description, r.chart) for r in report.revisions] == [
        (1, "deployed", "dataops", "Install complete", "hybridops-0.1.0")
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
    assert f"{RELEASE}-postgresql" in output and "Install complete" in output
    assert "Dagster daemon: not ready" in output and "no pods" in output

    code, output = _main(monkeypatch, capsys, "rollback", "-n", NS, "--to-revision", "1", "--wait", "0.2")
    assert code == 1, output  # the daemon never becomes ready
    assert "revision 2" in output and "not all ready" in output

    code, output = _main(monkeypatch, capsys, "history", "-n", NS)
    assert code == 0, output
    rows = [line for line in output.splitlines() if "hybridops-0.1.0" in line]
    assert len(rows) == 2, output
    assert "superseded" in rows[0] and "Install complete" in rows[0]
    assert "failed" in rows[1] and "Rollback" in rows[1]
    code, output = _main(monkeypatch, capsys, "history", "-n", "elsewhere")
    assert code == 1 and "release hybridops has no revisions in namespace elsewhere" in output


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
