"""Readiness of a release's workloads: waiting for a rollout, explaining what is not ready (pod states,
Warning events), and ``hybridops status``'s report (workloads, pods, the Dagster daemon, revisions)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from hybridops.deploy import chart
from hybridops.deploy.kube import WORKLOAD_KINDS, _get, _path
from hybridops.deploy.release_store import Revision, revisions

_WAITING_OK = {"ContainerCreating", "PodInitializing"}


@dataclass
class WorkloadStatus:
    kind: str
    name: str
    ready: bool
    replicas: int
    ready_replicas: int
    reasons: list[str] = field(default_factory=list)


@dataclass
class PodStatus:
    name: str
    phase: str
    ready: bool
    restarts: int
    reason: str = ""


@dataclass
class StatusReport:
    release: str
    namespace: str
    workloads: list[WorkloadStatus]
    pods: list[PodStatus]
    daemon: WorkloadStatus | None
    revisions: list[Revision]


def _workload_status(api: client.ApiClient, obj: dict[str, Any], namespace: str) -> WorkloadStatus:
    kind, name = obj["kind"], obj["metadata"]["name"]
    live = _get(api, _path(obj["apiVersion"], kind, namespace, name))
    if live is None:
        return WorkloadStatus(kind, name, False, 0, 0, ["not found"])
    spec, status = live.get("spec") or {}, live.get("status") or {}
    replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    ready_replicas = int(status.get("readyReplicas") or 0)
    observed = int(status.get("observedGeneration") or 0)
    generation = int((live.get("metadata") or {}).get("generation") or 0)
    updated = status.get("updatedReplicas")
    ready = (
        ready_replicas >= replicas
        and observed >= generation
        and (updated is None or int(updated) >= replicas or replicas == 0)
    )
    return WorkloadStatus(kind, name, ready, replicas, ready_replicas)


def _selector(obj: dict[str, Any]) -> str:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _pods(api: client.ApiClient, namespace: str, selector: str = "") -> list[dict[str, Any]]:
    query = [("labelSelector", selector)] if selector else []
    found = _get(api, f"/api/v1/namespaces/{namespace}/pods", query=query)
    return list((found or {}).get("items") or [])


def _pod_reasons(pod: dict[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    name = pod["metadata"]["name"]
    reasons = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            reasons.append(
                f"{name}: {cond.get('reason', 'Unschedulable')}: {cond.get('message', '')}".strip()
            )
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = cs.get("state") or {}
        waiting = state.get("waiting")
        terminated = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if waiting and waiting.get("reason") not in _WAITING_OK:
            message = waiting.get("message") or ""
            reasons.append(
                f"{name}/{cs['name']}: {waiting.get('reason')}" + (f": {message}" if message else "")
            )
        elif terminated and terminated.get("reason") not in (None, "Completed") and not cs.get("ready"):
            reasons.append(
                f"{name}/{cs['name']}: {terminated.get('reason')} (exit {terminated.get('exitCode')})"
            )
        elif not cs.get("ready") and state.get("running"):
            reasons.append(f"{name}/{cs['name']}: running, readiness probe not passing yet")
    return reasons


def _warning_events(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    found = _get(api, f"/api/v1/namespaces/{namespace}/events")
    events = [e for e in (found or {}).get("items") or [] if e.get("type") == "Warning"]
    return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""), reverse=True)


def _explain(
    api: client.ApiClient, obj: dict[str, Any], namespace: str, events: list[dict[str, Any]]
) -> list[str]:
    """Why a workload is not ready: pod container states, then its recent Warning events."""
    name = obj["metadata"]["name"]
    pods = _pods(api, namespace, _selector(obj))
    reasons = [reason for pod in pods for reason in _pod_reasons(pod)]
    if not pods:
        reasons.append("no pods")
    involved = {name, *(p["metadata"]["name"] for p in pods)}
    seen: set[str] = set()
    for event in events:
        target = (event.get("involvedObject") or {}).get("name", "")
        if target in involved or target.startswith(f"{name}-"):
            line = f"event {event.get('reason')}: {' '.join(str(event.get('message', '')).split())}"
            if line not in seen:
                seen.add(line)
                reasons.append(line)
        if len(seen) >= 3:
            break
    return reasons


def wait_ready(
    api: client.ApiClient,
    objects: Sequence[dict[str, Any]],
    namespace: str,
    wait_seconds: float,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[WorkloadStatus]:
    """Poll the Deployments/StatefulSets until all are ready or ``wait_seconds`` pass; explain the rest."""
    workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    deadline = time.monotonic() + wait_seconds
    while True:
        statuses = [_workload_status(api, o, namespace) for o in workloads]
        if all(s.ready for s in statuses) or time.monotonic() >= deadline:
            break
        sleep(min(poll_seconds, max(deadline - time.monotonic(), 0.0)))
    if not all(s.ready for s in statuses):
        events = _warning_events(api, namespace)
        for obj, st in zip(workloads, statuses, strict=True):
            if not st.ready:
                st.reasons.extend(_explain(api, obj, namespace, events))
                if not st.reasons:
                    st.reasons.append(f"{st.ready_replicas}/{st.replicas} ready when the wait ended")
    return statuses


def status(
    api: client.ApiClient, namespace: str = chart.DEFAULT_NAMESPACE, release: str = chart.DEFAULT_RELEASE
) -> StatusReport:
    """Workload readiness, pods, the Dagster daemon and the recorded revisions of a release."""
    selector = f"app.kubernetes.io/instance={release}"
    workloads: list[WorkloadStatus] = []
    objects: list[dict[str, Any]] = []
    for api_version, kind in (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet")):
        found = _get(api, _path(api_version, kind, namespace), query=[("labelSelector", selector)])
        for item in (found or {}).get("items") or []:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
            objects.append(item)
    objects.sort(key=lambda o: (o["kind"], o["metadata"]["name"]))
    events: list[dict[str, Any]] | None = None
    for obj in objects:
        st = _workload_status(api, obj, namespace)
        if not st.ready:
            events = _warning_events(api, namespace) if events is None else events
            st.reasons.extend(_explain(api, obj, namespace, events))
        workloads.append(st)
    pods = []
    for pod in sorted(_pods(api, namespace, selector), key=lambda p: p["metadata"]["name"]):
        pod_status = pod.get("status") or {}
        statuses = pod_status.get("containerStatuses") or []
        reasons = _pod_reasons(pod)
        pods.append(
            PodStatus(
                name=pod["metadata"]["name"],
                phase=str(pod_status.get("phase", "Unknown")),
                ready=bool(statuses) and all(cs.get("ready") for cs in statuses),
                restarts=sum(int(cs.get("restartCount") or 0) for cs in statuses),
                reason="; ".join(r.split(": ", 1)[-1] for r in reasons),
            )
        )
    daemon = next((w for w in workloads if re.search(r"-dagster-daemon$", w.name)), None)
    return StatusReport(release, namespace, workloads, pods, daemon, revisions(api, namespace, release))
