"""The chart renders with the real Helm engine for every profile and ci values file, lints clean and
passes strict Kubernetes schema validation."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploy_support import CASES, CLUSTER_SCOPED, CRD_KINDS, EXISTING_SECRETS, kinds, objects, render

from hybridops.deploy import chart

KUBE_VERSIONS = ["1.30", "1.31", "1.32", "1.33", "1.34"]


@pytest.mark.parametrize(("case", "profile", "files"), CASES, ids=[c[0] for c in CASES])
def test_renders_objects_with_namespace_and_labels(case: str, profile: str, files: tuple[Path, ...]) -> None:
    objs = objects(profile, files)
    assert objs
    for obj in objs:
        meta = obj["metadata"]
        where = f"{obj['kind']}/{meta['name']}"
        if obj["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace"), where
        labels = meta["labels"]
        for key in ("name", "instance", "version", "component", "part-of", "managed-by"):
            assert labels.get(f"app.kubernetes.io/{key}"), (where, key)


def _unique_core_objects() -> list[dict]:
    """Core objects of every case, each distinct object once (most are shared between cases)."""
    seen: dict[str, dict] = {}
    for _, profile, files in CASES:
        for obj in objects(profile, files):
            if obj["kind"] not in CRD_KINDS:
                seen.setdefault(json.dumps(obj, sort_keys=True), obj)
    return list(seen.values())


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_core_objects_pass_strict_validation(version: str) -> None:
    for obj in _unique_core_objects():
        kubernetes_validate.validate(obj, version, strict=True)


def test_lint_strict_is_clean() -> None:
    findings = chart.lint(strict=True)
    assert [f for f in findings if f.severity in ("warning", "error")] == []


@pytest.mark.parametrize("values_file", chart.ci_values_files(), ids=lambda p: p.stem)
def test_lint_strict_with_ci_values(values_file: Path) -> None:
    values = chart.user_values("hybrid", [values_file])
    findings = chart.lint(strict=True, values=values)
    assert [f for f in findings if f.severity in ("warning", "error")] == []


def test_profiles_switch_components() -> None:
    dataops = {o["metadata"]["name"] for o in objects("dataops")}
    assert "hybridops-dagster-daemon" in dataops and "hybridops-postgresql" in dataops
    assert not {"hybridops-mlflow", "hybridops-feast", "hybridops-inference", "hybridops-redis"} & dataops
    mlops = {o["metadata"]["name"] for o in objects("mlops")}
    assert {"hybridops-mlflow", "hybridops-feast", "hybridops-inference", "hybridops-redis"} <= mlops
    assert "hybridops-dagster-user-code" in mlops


def test_hybrid_profile_equals_defaults() -> None:
    profile = yaml.safe_load((chart.PROFILES_DIR / "hybrid.yaml").read_text())
    defaults = yaml.safe_load((chart.CHART_DIR / "values.yaml").read_text())
    assert profile.pop("hybridops") == {"profile": defaults["hybridops"]["profile"]}
    for component, values in profile.items():
        assert defaults[component]["enabled"] == values["enabled"], component


def test_monitoring_modes() -> None:
    bundled = kinds(objects("hybrid"))
    assert not bundled & CRD_KINDS
    external = objects("hybrid", (chart.CI_DIR / "external-monitoring-values.yaml",))
    assert kinds(external) >= CRD_KINDS
    assert not any(o["metadata"]["name"] == "hybridops-prometheus" for o in external)
    dashboards = [o for o in external if o["metadata"]["name"] == "hybridops-dashboards"]
    assert dashboards[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    for monitor in (o for o in external if o["kind"] in {"ServiceMonitor", "PodMonitor"}):
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_render_is_byte_identical() -> None:
    first = chart.render("hybrid", [EXISTING_SECRETS])
    second = chart.render("hybrid", [EXISTING_SECRETS])
    assert first == second


def test_render_to_dir_writes_one_file_per_template(tmp_path: Path) -> None:
    written = chart.render_to_dir("dataops", tmp_path / "out", [EXISTING_SECRETS])
    assert {p.name for p in written} == {Path(t).name for t in render("dataops", (EXISTING_SECRETS,))}
    assert all(p.read_text().strip() for p in written)
