"""Release records keep their hooks as Helm's do, and a rollback runs the target revision's post-rollback hooks.

Against the HTTP double of the Kubernetes API (``k8s_double.py``); the records are decoded here as Helm's
``decodeRelease`` does and compared with the fields of Helm's ``pkg/release/v1.Hook``.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridops.deploy import cluster, releases

sys.path.insert(0, str(Path(__file__).parent))
from k8s_double import K8sDouble, running

NS = "team-b"
RELEASE = "hybridops"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
JOB = f"{RELEASE}-postgresql-roles"
JOB_PATH = f"/apis/batch/v1/namespaces/{NS}/jobs/{JOB}"
# The JSON keys of Helm's Hook and HookExecution (pkg/release/v1/hook.go)
HELM_HOOK_FIELDS = {"name", "kind", "path", "manifest", "events", "last_run", "weight", "delete_policies"}
HELM_EXECUTION_FIELDS = {"started_at", "completed_at", "phase"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
def double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[K8sDouble]:
    with running() as fake:
        monkeypatch.setenv("KUBECONFIG", str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
        yield fake


def _deploy(values: Path | None = None) -> cluster.DeployReport:
    files = [values] if values else []
    return cluster.deploy(cluster.connect(), "dataops", files, NS, RELEASE, wait_seconds=1, poll_seconds=0.05)


def _rollback(to: int) -> cluster.DeployReport:
    return cluster.rollback(cluster.connect(), NS, RELEASE, to, wait_seconds=1, poll_seconds=0.05)


def _decode_secret(secret: dict[str, Any]) -> dict[str, Any]:
    """Helm's decodeRelease, written out: the API's base64, Helm's base64, gzip, JSON."""
    helm_value = base64.b64decode(secret["data"]["release"])
    return dict(json.loads(gzip.decompress(base64.b64decode(helm_value))))


def _release(double: K8sDouble, number: int) -> dict[str, Any]:
    secret = double.get(f"{SECRETS}/sh.helm.release.v1.{RELEASE}.v{number}")
    assert secret is not None, f"revision {number} not recorded"
    return _decode_secret(secret)


def _job_requests(double: K8sDouble, since: int = 0) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in double.requests[since:] if path == JOB_PATH]


def _upgraded(double: K8sDouble, tmp_path: Path) -> None:
    """Revision 1 (install: the hook recorded, not run) and 2 (upgrade without monitoring: the hook run)."""
    _deploy()
    values = tmp_path / "no-monitoring.yaml"
    values.write_text("monitoring:\n  enabled: false\n")
    _deploy(values)


def test_a_deploy_records_its_hooks_in_helms_shape_and_their_last_run(
    double: K8sDouble, tmp_path: Path
) -> None:
    first = _deploy()
    assert first.hooks == []  # no post-install hook in the chart
    (hook,) = _release(double, 1)["hooks"]
    # weight 0 is left out (omitempty); last_run and its phase are always there, as Go writes them
    assert set(hook) == HELM_HOOK_FIELDS - {"weight"}
    assert (hook["name"], hook["kind"]) == (JOB, "Job")
    assert hook["path"] == "hybridops/templates/job-postgresql-roles.yaml"
    assert hook["events"] == ["post-upgrade", "post-rollback"]
    assert hook["delete_policies"] == ["before-hook-creation", "hook-succeeded"]
    assert hook["last_run"] == {"phase": ""}  # never run: zero times left out
    manifest = yaml.safe_load(hook["manifest"])
    assert (manifest["kind"], manifest["metadata"]["name"]) == ("Job", JOB)
    assert manifest["metadata"]["annotations"]["helm.sh/hook"] == "post-upgrade,post-rollback"
    assert not hook["manifest"].startswith("---")  # the document alone; `helm get hooks` adds the Source line
    assert "Job" not in {d.obj["kind"] for d in releases.split_manifest(_release(double, 1)["manifest"])}

    second = _deploy()
    assert second.hooks == [f"Job/{JOB}"]
    (ran,) = _release(double, 2)["hooks"]
    created = next(body for method, path, body in double.requests if method == "POST" and path == JOB_PATH)
    assert yaml.safe_load(ran["manifest"]) == created  # what ran is what the record keeps
    run = ran["last_run"]
    assert set(run) == HELM_EXECUTION_FIELDS and run["phase"] == "Succeeded"
    assert RFC3339.match(run["started_at"]) and RFC3339.match(run["completed_at"])
    assert run["started_at"] <= run["completed_at"]
    # while the Job ran, the record said Running (Helm's execHook records the start before creating it)
    puts = [
        _decode_secret(body)
        for method, path, body in double.requests
        if method == "PUT" and path == f"{SECRETS}/sh.helm.release.v1.{RELEASE}.v2" and body
    ]
    phases = [p["hooks"][0]["last_run"]["phase"] for p in puts]
    assert phases == ["Running", "Succeeded"]
    assert [p["info"]["status"] for p in puts] == ["pending-upgrade", "deployed"]
    # superseding revision 2 rewrites its record whole: its hooks stay as they were
    _deploy()
    assert _release(double, 2)["info"]["status"] == "superseded"
    assert _release(double, 2)["hooks"] == [ran]


def test_rollback_runs_the_targets_post_rollback_hook_and_records_it(
    double: K8sDouble, tmp_path: Path
) -> None:
    _upgraded(double, tmp_path)
    v1 = _release(double, 1)
    before = len(double.requests)

    report = _rollback(1)

    assert report.revision == 3 and report.ready and report.hooks == [f"Job/{JOB}"]
    assert _job_requests(double, before) == [
        ("DELETE", JOB_PATH),  # before-hook-creation (revision 2's run was deleted when it succeeded: 404)
        ("POST", JOB_PATH),
        ("DELETE", JOB_PATH),  # hook-succeeded
    ]
    # after the rolled-back objects were applied and ready, as Helm's post-rollback
    methods = [(method, path) for method, path, _ in double.requests[before:]]
    last_apply = max(i for i, (method, _) in enumerate(methods) if method == "APPLY")
    assert methods.index(("POST", JOB_PATH)) > last_apply
    created = next(
        body for method, path, body in double.requests[before:] if method == "POST" and path == JOB_PATH
    )
    assert created == yaml.safe_load(v1["hooks"][0]["manifest"])  # the target's hook, not a new render

    v3 = _release(double, 3)
    assert (v3["info"]["status"], v3["info"]["description"]) == ("deployed", "Rollback to 1")
    (hook,) = v3["hooks"]
    (target,) = v1["hooks"]
    assert {k: v for k, v in hook.items() if k != "last_run"} == {
        k: v for k, v in target.items() if k != "last_run"
    }
    assert hook["last_run"]["phase"] == "Succeeded" and RFC3339.match(hook["last_run"]["completed_at"])
    assert hook["last_run"]["started_at"] > _release(double, 2)["hooks"][0]["last_run"]["completed_at"]
    assert _release(double, 1)["hooks"] == v1["hooks"]  # the target's own record is left as it was


def test_a_failed_post_rollback_hook_fails_the_rollback_and_is_recorded_failed(
    double: K8sDouble, tmp_path: Path
) -> None:
    _upgraded(double, tmp_path)
    double.not_ready.add(JOB)
    with pytest.raises(cluster.DeployError, match="revision 3 recorded as failed"):
        _rollback(1)
    v3 = _release(double, 3)
    assert v3["info"]["status"] == "failed"
    assert f"post-rollback hook Job/{JOB} failed: BackoffLimitExceeded" in v3["info"]["description"]
    assert v3["hooks"][0]["last_run"]["phase"] == "Failed"
    assert _release(double, 2)["info"]["status"] == "superseded"  # as Helm's failed rollback leaves it


def test_a_record_without_hooks_still_rolls_back_and_runs_none(double: K8sDouble, tmp_path: Path) -> None:
    _upgraded(double, tmp_path)
    # revision 1 as an older hybridops wrote it: no `hooks` in the record
    path = f"{SECRETS}/sh.helm.release.v1.{RELEASE}.v1"
    secret = double.get(path)
    assert secret is not None
    old = releases.from_secret(secret)
    old.hooks = []
    double.objects[path] = releases.secret(old, NS, created=True)
    assert "hooks" not in _release(double, 1)
    before = len(double.requests)

    report = _rollback(1)

    assert report.revision == 3 and report.ready and report.hooks == []
    assert _job_requests(double, before) == []
    v3 = _release(double, 3)
    assert v3["info"]["status"] == "deployed" and "hooks" not in v3
    assert v3["manifest"] == _release(double, 1)["manifest"]


def test_a_pre_rollback_hook_in_the_target_record_is_refused_before_anything_changes(
    double: K8sDouble, tmp_path: Path
) -> None:
    """A record ``helm`` wrote for a chart with a pre-rollback hook: hybridops cannot run it, so it says so
    (naming the hook and what to use) instead of rolling back without it."""
    _upgraded(double, tmp_path)
    path = f"{SECRETS}/sh.helm.release.v1.{RELEASE}.v1"
    secret = double.get(path)
    assert secret is not None
    rel = releases.from_secret(secret)
    rel.hooks = [{**rel.hooks[0], "events": ["pre-rollback"]}]
    double.objects[path] = releases.secret(rel, NS, created=True)
    before = len(double.requests)

    with pytest.raises(
        cluster.DeployError,
        match=rf"Job/{JOB} \(hybridops/templates/job-postgresql-roles.yaml\) is a Helm hook for pre-rollback: "
        "hybridops rollback runs only post-rollback hooks; use helm rollback",
    ):
        _rollback(1)
    assert double.get(f"{SECRETS}/sh.helm.release.v1.{RELEASE}.v3") is None
    assert [m for m, _, _ in double.requests[before:] if m != "GET"] == []


def test_an_unreadable_hook_in_a_record_names_the_revision(double: K8sDouble, tmp_path: Path) -> None:
    _upgraded(double, tmp_path)
    path = f"{SECRETS}/sh.helm.release.v1.{RELEASE}.v1"
    secret = double.get(path)
    assert secret is not None
    rel = releases.from_secret(secret)
    rel.hooks = [{**rel.hooks[0], "manifest": "just text"}]
    double.objects[path] = releases.secret(rel, NS, created=True)
    with pytest.raises(
        cluster.DeployError,
        match=rf"hook {JOB} of release {RELEASE} revision 1: its manifest is not a Kubernetes object",
    ):
        _rollback(1)
