"""Helpers of the chart tests: cached renders and walkers over pods and containers."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from hybridops.deploy import chart

EXISTING_SECRETS = chart.CI_DIR / "existing-secrets-values.yaml"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace", "PersistentVolume", "StorageClass"}

# Every case: (id, profile, values files). Generated Secrets make plain renders differ; cases that
# compare renders byte for byte add EXISTING_SECRETS.
CASES: list[tuple[str, str, tuple[Path, ...]]] = [
    *[(profile, profile, ()) for profile in chart.profiles()],
    *[(f"hybrid+{path.stem}", "hybrid", (path,)) for path in chart.ci_values_files()],
]


@cache
def render(profile: str, values_files: tuple[Path, ...] = ()) -> dict[str, str]:
    return chart.render(profile, list(values_files))


@cache
def objects(profile: str, values_files: tuple[Path, ...] = ()) -> tuple[dict[str, Any], ...]:
    return tuple(chart.manifests(render(profile, values_files)))


def pod_specs(objs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, pod template metadata, pod spec) of every workload."""
    out = []
    for obj in objs:
        if obj["kind"] in WORKLOAD_KINDS:
            template = obj["spec"]["template"]
            out.append((f"{obj['kind']}/{obj['metadata']['name']}", template["metadata"], template["spec"]))
    return out


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def find(objs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind}/{name}")


def kinds(objs: tuple[dict[str, Any], ...]) -> set[str]:
    return {obj["kind"] for obj in objs}
