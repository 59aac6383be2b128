"""The pod templates and Services of a rendered release, the Dagster run pod included.

Workloads are keyed by their ``app.kubernetes.io/component`` label; the run pod the K8sRunLauncher creates
is derived from the instance ConfigMap's ``run_launcher`` config (it is in no manifest of the render).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
RUN_POD = "dagster-run"


@dataclass
class Pod:
    """A pod template of the release (or a stand-in for a pod outside it)."""

    name: str
    namespace: str
    labels: dict[str, str] | None  # None: a pod outside the release whose labels are unknown
    ports: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (containerPort, protocol)
    spec: dict[str, Any] = field(default_factory=dict)
    in_cluster: bool = True  # False: an address outside the cluster's pods (API server, external host)


def _container_ports(spec: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    return {
        p["name"]: (int(p["containerPort"]), p.get("protocol", "TCP"))
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]
        for p in c.get("ports", [])
        if p.get("name")
    }


def _run_pod(objs: Sequence[Mapping[str, Any]], namespace: str) -> Pod | None:
    """The Dagster run pod the K8sRunLauncher creates, from the instance ConfigMap's run_launcher config."""
    for obj in objs:
        if obj["kind"] == "ConfigMap" and "dagster.yaml" in obj.get("data", {}):
            config = (
                (yaml.safe_load(obj["data"]["dagster.yaml"]) or {}).get("run_launcher", {}).get("config", {})
            )
            if "labels" not in config:
                continue
            k8s = config.get("run_k8s_config", {})
            container = dict(k8s.get("container_config", {}))
            spec = dict(k8s.get("pod_spec_config", {}))
            # The launcher mounts the instance ConfigMap into each run pod (the run's storage connection).
            instance = config.get("instance_config_map", obj["metadata"]["name"])
            spec["volumes"] = [
                *spec.get("volumes", []),
                {"name": "instance", "configMap": {"name": instance}},
            ]
            mounts = [*container.get("volumeMounts", []), {"name": "instance", "mountPath": "/opt/dagster"}]
            spec["containers"] = [{"name": "run", **container, "volumeMounts": mounts}]
            ns = config.get("job_namespace") or obj["metadata"].get("namespace", namespace)
            return Pod(f"Job/{RUN_POD}", ns, dict(config["labels"]), {}, spec)
    return None


def pods(objs: Sequence[Mapping[str, Any]], namespace: str = "hybridops") -> dict[str, Pod]:
    """Every pod template of the render by component label (run pods included)."""
    out: dict[str, Pod] = {}
    for obj in objs:
        if obj["kind"] in WORKLOAD_KINDS:
            template = obj["spec"]["template"]
            labels = dict(template["metadata"].get("labels", {}))
            component = labels.get("app.kubernetes.io/component", obj["metadata"]["name"])
            ns = obj["metadata"].get("namespace", namespace)
            out[component] = Pod(
                f"{obj['kind']}/{obj['metadata']['name']}", ns, labels, _container_ports(template["spec"]),
                template["spec"],
            )  # fmt: skip
    run = _run_pod(objs, namespace)
    if run is not None:
        out[RUN_POD] = run
    return out


def _services(objs: Sequence[Mapping[str, Any]], namespace: str) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {
        (o["metadata"]["name"], o["metadata"].get("namespace", namespace)): o
        for o in objs
        if o["kind"] == "Service"
    }
