"""Static security scan of the rendered manifests with checkov (``--framework kubernetes``).

Every profile and ci values file is rendered into one folder and scanned by a single checkov run (it
starts slowly; one run keeps this test to seconds). Any failed check not accepted, with a reason, in
``charts/hybridops/ci/checkov-skips.yaml`` fails the test. checkov lives in its own virtualenv
(``.venv-scan``, made by ``make setup``): it pins many heavy dependencies of its own.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import CASES, render

from hybridops.deploy import chart

REPO = chart.CHART_DIR.parents[1]
CHECKOV = Path(os.environ.get("HYBRIDOPS_CHECKOV", REPO / ".venv-scan" / "bin" / "checkov"))
SKIPS_FILE = chart.CI_DIR / "checkov-skips.yaml"
CANARY = "scan-canary"


def _canary(rendered: dict[str, str]) -> dict[str, Any]:
    """A copy of the webserver Deployment made insecure on purpose: proves the scan really runs checks."""
    deployment = next(
        doc
        for text in rendered.values()
        for doc in yaml.safe_load_all(text)
        if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == "hybridops-dagster-webserver"
    )
    canary = copy.deepcopy(deployment)
    canary["metadata"]["name"] = CANARY
    container = canary["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"].update({"privileged": True, "allowPrivilegeEscalation": True})
    return canary


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not CHECKOV.is_file():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make setup` (it makes .venv-scan)")
    root = tmp_path_factory.mktemp("rendered")
    for case, profile, files in CASES:
        folder = root / case
        folder.mkdir()
        for template, text in render(profile, files).items():
            (folder / Path(template).name).write_text(text)
    (root / "canary.yaml").write_text(yaml.safe_dump(_canary(render("hybrid")), sort_keys=False))
    result = subprocess.run(
        # --skip-download: no calls home for guidelines or policies (this must work offline);
        # --soft-fail: exit 0 on findings, so a non-zero exit means checkov itself broke.
        [
            *(str(CHECKOV), "-d", str(root), "--framework", "kubernetes", "--skip-download", "--soft-fail"),
            *("--output", "json", "--quiet", "--compact"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert isinstance(report, dict) and report["check_type"] == "kubernetes", str(report)[:500]
    return report


def _findings(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(check id, Kind/name, case folder) of every failed check."""
    out = []
    for check in report["results"]["failed_checks"]:
        kind, _namespace, name = check["resource"].split(".", 2)  # Kind.namespace.name
        parts = Path(check["file_path"]).parts  # /<case>/<template>.yaml, relative to the scanned root
        out.append((check["check_id"], f"{kind}/{name}", parts[1] if len(parts) > 2 else ""))
    return out


def _skips() -> list[dict[str, Any]]:
    skips = yaml.safe_load(SKIPS_FILE.read_text())
    for skip in skips:
        assert set(skip) <= {"id", "reason", "resources"}, skip
        assert skip["id"].startswith("CKV_K8S_") and len(skip["reason"]) > 40, skip
    return skips


def _accepted(finding: tuple[str, str, str], skip: dict[str, Any]) -> bool:
    check_id, resource, _ = finding
    return check_id == skip["id"] and ("resources" not in skip or resource in skip["resources"])


def test_every_case_is_scanned(scan: dict[str, Any]) -> None:
    summary = scan["summary"]
    assert summary["parsing_errors"] == 0, summary
    workloads = sum(
        1
        for _, profile, files in CASES
        for text in render(profile, files).values()
        for doc in yaml.safe_load_all(text)
        if doc and doc["kind"] in ("Deployment", "StatefulSet")
    )
    # every object is a checkov resource; each workload alone runs dozens of checks
    assert summary["resource_count"] > workloads and summary["passed"] > 20 * workloads, summary


def test_the_scan_catches_an_insecure_pod(scan: dict[str, Any]) -> None:
    caught = {check_id for check_id, resource, _ in _findings(scan) if resource == f"Deployment/{CANARY}"}
    assert {"CKV_K8S_16", "CKV_K8S_20"} <= caught, caught  # privileged; allowPrivilegeEscalation


def test_no_failed_check_outside_the_explained_skips(scan: dict[str, Any]) -> None:
    skips = _skips()
    findings = [f for f in _findings(scan) if f[1] != f"Deployment/{CANARY}"]
    unexplained = sorted({f for f in findings if not any(_accepted(f, s) for s in skips)})
    assert unexplained == [], "\n".join(f"{c} {r} ({case})" for c, r, case in unexplained)
    stale = [s["id"] for s in skips if not any(_accepted(f, s) for f in findings)]
    assert stale == [], f"skips that match no finding any more, remove them: {stale}"
    for skip in skips:
        for resource in skip.get("resources", []):
            matched = any(_accepted(f, skip) and f[1] == resource for f in findings)
            assert matched, f"{skip['id']} no longer fails for {resource}: remove it from {SKIPS_FILE.name}"
