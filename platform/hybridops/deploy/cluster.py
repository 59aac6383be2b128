"""Install, upgrade, inspect and roll back the chart on a cluster with the ``kubernetes`` client.

There is no helm binary and ``helm_python`` has no install API, so a deploy renders the chart offline
(:mod:`hybridops.deploy.chart`) and server-side applies every object (field manager ``hybridops``).
Each deploy is recorded as a Secret ``hybridops-release-<release>-v<N>`` (labels ``owner=hybridops``,
``release``, ``revision``, ``status``; data ``manifests`` and ``values``, gzip) so :func:`rollback` can
re-apply an earlier revision and objects dropped by a new revision are deleted (pruned).

An offline render cannot ``lookup`` the cluster, so generated Secrets (``helm.sh/resource-policy: keep``)
would get new random passwords on every deploy: a deploy keeps the data of those that already exist, and
keeps the live value of pod-template ``checksum/*`` annotations that hash such a Secret (they match no
rendered template), so upgrades neither change passwords nor roll pods for nothing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hybridops.deploy import chart
from hybridops.errors import HybridopsError

FIELD_MANAGER = "hybridops"
OWNER_LABEL = "owner"
RELEASE_SECRET_PREFIX = "hybridops-release-"
KEEP_ANNOTATION = "helm.sh/resource-policy"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 30.0
_WAITING_OK = {"ContainerCreating", "PodInitializing"}


class ClusterUnavailable(HybridopsError):
    """No kubeconfig or in-cluster config, or the API server does not answer."""


class DeployError(HybridopsError):
    """The API server refused an object or a revision is missing."""


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
class Revision:
    number: int
    status: str
    profile: str
    deployed_at: str
    description: str


@dataclass
class DeployReport:
    release: str
    namespace: str
    revision: int
    applied: int
    pruned: list[str]
    workloads: list[WorkloadStatus]

    @property
    def ready(self) -> bool:
        return all(w.ready for w in self.workloads)


@dataclass
class StatusReport:
    release: str
    namespace: str
    workloads: list[WorkloadStatus]
    pods: list[PodStatus]
    daemon: WorkloadStatus | None
    revisions: list[Revision]


# ------------------------------------------------------------------------------------------- connection


def _kubeconfig_files() -> list[str]:
    value = os.environ.get("KUBECONFIG")
    return value.split(os.pathsep) if value else [os.path.expanduser("~/.kube/config")]


def _kubeconfig_hint() -> str:
    value = os.environ.get("KUBECONFIG")
    return f"KUBECONFIG={value}" if value else "KUBECONFIG unset, ~/.kube/config"


def connect(context: str | None = None, timeout: float = CONNECT_TIMEOUT) -> client.ApiClient:
    """An API client for the current (or named) kube context, else the in-cluster service account.

    Raises :class:`ClusterUnavailable` (one line) when there is no configuration or the API server
    does not answer ``/version`` within ``timeout`` seconds.
    """
    configuration = client.Configuration()
    files = _kubeconfig_files()
    try:
        if not any(os.path.isfile(path) for path in files):
            raise config.ConfigException("no such file")
        config.load_kube_config(
            config_file=os.pathsep.join(files), context=context, client_configuration=configuration
        )
    except (config.ConfigException, OSError, ValueError, TypeError) as kube_exc:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            raise ClusterUnavailable(
                f"no reachable Kubernetes cluster: {_kubeconfig_hint()}: {_one_line(kube_exc)}, "
                "and not running in a cluster (set KUBECONFIG or --context)"
            ) from None
    configuration.retries = 0
    api = client.ApiClient(configuration)
    try:
        _call(api, "GET", "/version", timeout=timeout)
    except ApiException as exc:
        raise ClusterUnavailable(
            f"no reachable Kubernetes cluster: {configuration.host} answered {exc.status} {exc.reason} "
            f"({_kubeconfig_hint()}) (set KUBECONFIG or --context)"
        ) from None
    except Exception as exc:  # urllib3 connection errors, timeouts, TLS failures
        raise ClusterUnavailable(
            f"no reachable Kubernetes cluster: {configuration.host} does not answer "
            f"({type(exc).__name__}; {_kubeconfig_hint()}) (set KUBECONFIG or --context)"
        ) from None
    return api


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


# ------------------------------------------------------------------------------------------ raw requests


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x")):
        return lower + "es"
    return lower + "s"


def _path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{_plural(kind)}" if namespace else f"{base}/{_plural(kind)}"
    return f"{path}/{name}" if name else path


def _call(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
    timeout: float = REQUEST_TIMEOUT,
) -> Any:
    response = api.call_api(
        path,
        method,
        query_params=query or [],
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
        _request_timeout=timeout,
    )
    data = response.data
    return json.loads(data) if data else None


def _get(api: client.ApiClient, path: str, query: list[tuple[str, str]] | None = None) -> Any | None:
    try:
        return _call(api, "GET", path, query=query)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _describe(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _apply(api: client.ApiClient, obj: dict[str, Any], namespace: str) -> None:
    meta = obj["metadata"]
    meta.setdefault("namespace", namespace)
    path = _path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    try:
        _call(
            api,
            "PATCH",
            path,
            body=obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
    except ApiException as exc:
        if exc.status == 404 and "/apis/" in path and obj["kind"] not in WORKLOAD_KINDS:
            raise DeployError(
                f"the cluster has no {obj['kind']} ({obj['apiVersion']}) to apply {_describe(obj)}: "
                "install its CRDs or change the values that render it"
            ) from None
        raise DeployError(f"applying {_describe(obj)} failed: {exc.status} {_api_message(exc)}") from None


def _ensure_namespace(api: client.ApiClient, namespace: str) -> None:
    if _get(api, f"/api/v1/namespaces/{namespace}") is None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        try:
            _call(api, "POST", "/api/v1/namespaces", body=body)
        except ApiException as exc:
            if exc.status != 409:
                raise DeployError(
                    f"creating namespace {namespace} failed: {exc.status} {_api_message(exc)}"
                ) from None


# --------------------------------------------------------------------------------------------- revisions


def _pack(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()


def _unpack(data: str) -> str:
    return gzip.decompress(base64.b64decode(data)).decode()


def _release_secrets(api: client.ApiClient, namespace: str, release: str) -> list[dict[str, Any]]:
    found = _get(
        api,
        f"/api/v1/namespaces/{namespace}/secrets",
        query=[("labelSelector", f"{OWNER_LABEL}=hybridops,release={release}")],
    )
    items = (found or {}).get("items") or []
    return sorted(items, key=lambda s: int(s["metadata"]["labels"]["revision"]))


def revisions(api: client.ApiClient, namespace: str, release: str) -> list[Revision]:
    out = []
    for secret in _release_secrets(api, namespace, release):
        labels = secret["metadata"].get("labels") or {}
        notes = secret["metadata"].get("annotations") or {}
        out.append(
            Revision(
                number=int(labels["revision"]),
                status=labels.get("status", "unknown"),
                profile=notes.get("hybridops/profile", ""),
                deployed_at=notes.get("hybridops/deployed-at", ""),
                description=notes.get("hybridops/description", ""),
            )
        )
    return out


def _record(
    api: client.ApiClient,
    namespace: str,
    release: str,
    revision: int,
    objects: list[dict[str, Any]],
    values: dict[str, Any],
    profile: str,
    description: str,
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "hybridops.io/release.v1",
        "metadata": {
            "name": f"{RELEASE_SECRET_PREFIX}{release}-v{revision}",
            "namespace": namespace,
            "labels": {
                OWNER_LABEL: "hybridops",
                "release": release,
                "revision": str(revision),
                "status": "pending",
            },
            "annotations": {
                "hybridops/profile": profile,
                "hybridops/deployed-at": datetime.now(UTC).isoformat(timespec="seconds"),
                "hybridops/description": description,
            },
        },
        "data": {
            "manifests": _pack(yaml.safe_dump_all(objects, sort_keys=False)),
            "values": _pack(yaml.safe_dump(values, sort_keys=False)),
        },
    }
    _apply(api, body, namespace)


def _set_status(api: client.ApiClient, namespace: str, release: str, revision: int, status: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/secrets/{RELEASE_SECRET_PREFIX}{release}-v{revision}"
    _call(
        api,
        "PATCH",
        path,
        body={"metadata": {"labels": {"status": status}}},
        content_type="application/merge-patch+json",
    )


def _load_revision(
    api: client.ApiClient, namespace: str, release: str, revision: int
) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    secret = _get(api, f"/api/v1/namespaces/{namespace}/secrets/{RELEASE_SECRET_PREFIX}{release}-v{revision}")
    if secret is None:
        raise DeployError(f"release {release} has no revision {revision} in namespace {namespace}")
    data = secret.get("data") or {}
    objects = [doc for doc in yaml.safe_load_all(_unpack(data["manifests"])) if doc]
    values = yaml.safe_load(_unpack(data["values"])) if "values" in data else {}
    profile = (secret["metadata"].get("annotations") or {}).get("hybridops/profile", "")
    return objects, values or {}, profile


# ---------------------------------------------------------------------- generated secrets and checksums


def _keep_generated(api: client.ApiClient, rendered: dict[str, str], namespace: str) -> list[dict[str, Any]]:
    """Objects of a render, with kept Secrets' data and unverifiable checksums taken from the cluster."""
    template_hashes = {hashlib.sha256(text.encode()).hexdigest() for text in rendered.values()}
    objects = chart.manifests(rendered)
    return _reconcile(api, objects, namespace, template_hashes)


def _reconcile(
    api: client.ApiClient,
    objects: list[dict[str, Any]],
    namespace: str,
    template_hashes: set[str] | None,
) -> list[dict[str, Any]]:
    for obj in objects:
        meta = obj["metadata"]
        ns = meta.get("namespace") or namespace
        if obj["kind"] == "Secret" and (meta.get("annotations") or {}).get(KEEP_ANNOTATION) == "keep":
            live = _get(api, _path("v1", "Secret", ns, meta["name"]))
            if live and live.get("data"):
                obj["data"] = {**(obj.get("data") or {}), **live["data"]}
        elif obj["kind"] in WORKLOAD_KINDS:
            template_meta = obj["spec"]["template"].setdefault("metadata", {})
            notes = template_meta.get("annotations") or {}
            checksums = {
                k: v
                for k, v in notes.items()
                if k.startswith("checksum/") and (template_hashes is None or v not in template_hashes)
            }
            if not checksums or template_hashes is None:
                continue
            live = _get(api, _path(obj["apiVersion"], obj["kind"], ns, meta["name"]))
            live_notes = ((live or {}).get("spec", {}).get("template", {}).get("metadata") or {}).get(
                "annotations"
            ) or {}
            for key in checksums:
                if key in live_notes:
                    notes[key] = live_notes[key]
    return objects


# ------------------------------------------------------------------------------------------------ waiting


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


# ---------------------------------------------------------------------------------------------- actions


def _key(obj: dict[str, Any], namespace: str) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") or namespace, meta["name"])


def _prune(
    api: client.ApiClient,
    previous: list[dict[str, Any]],
    current: list[dict[str, Any]],
    namespace: str,
) -> list[str]:
    keep = {_key(o, namespace) for o in current}
    pruned = []
    for obj in previous:
        if _key(obj, namespace) in keep:
            continue
        if (obj["metadata"].get("annotations") or {}).get(KEEP_ANNOTATION) == "keep":
            continue
        api_version, kind, ns, name = _key(obj, namespace)
        try:
            _call(api, "DELETE", _path(api_version, kind, ns, name))
            pruned.append(f"{kind}/{name}")
        except ApiException as exc:
            if exc.status != 404:
                raise DeployError(
                    f"deleting {kind}/{name} failed: {exc.status} {_api_message(exc)}"
                ) from None
    return pruned


def _release(
    api: client.ApiClient,
    objects: list[dict[str, Any]],
    values: dict[str, Any],
    profile: str,
    namespace: str,
    release: str,
    description: str,
    wait_seconds: float,
    poll_seconds: float,
) -> DeployReport:
    history = _release_secrets(api, namespace, release)
    number = int(history[-1]["metadata"]["labels"]["revision"]) + 1 if history else 1
    previous = _load_revision(api, namespace, release, number - 1)[0] if history else []
    for obj in objects:
        _apply(api, obj, namespace)
    pruned = _prune(api, previous, objects, namespace)
    _record(api, namespace, release, number, objects, values, profile, description)
    for secret in history:
        if secret["metadata"]["labels"].get("status") != "superseded":
            _set_status(api, namespace, release, int(secret["metadata"]["labels"]["revision"]), "superseded")
    workloads = wait_ready(api, objects, namespace, wait_seconds, poll_seconds)
    ready = all(w.ready for w in workloads)
    _set_status(api, namespace, release, number, "deployed" if ready else "failed")
    return DeployReport(release, namespace, number, len(objects), pruned, workloads)


def deploy(
    api: client.ApiClient,
    profile: str,
    values_files: Sequence[Path] = (),
    namespace: str = chart.DEFAULT_NAMESPACE,
    release: str = chart.DEFAULT_RELEASE,
    wait_seconds: float = 300,
    poll_seconds: float = 2.0,
) -> DeployReport:
    """Install or upgrade: render offline, apply everything, record a revision, wait for rollouts."""
    rendered = chart.render(profile, values_files, namespace, release)
    values = chart.user_values(profile, values_files)
    _ensure_namespace(api, namespace)
    objects = _keep_generated(api, rendered, namespace)
    history = _release_secrets(api, namespace, release)
    description = "upgrade" if history else "install"
    return _release(
        api, objects, values, profile, namespace, release, description, wait_seconds, poll_seconds
    )


def rollback(
    api: client.ApiClient,
    namespace: str = chart.DEFAULT_NAMESPACE,
    release: str = chart.DEFAULT_RELEASE,
    to_revision: int | None = None,
    wait_seconds: float = 300,
    poll_seconds: float = 2.0,
) -> DeployReport:
    """Re-apply an earlier revision (default: the one before the latest) as a new revision."""
    history = [r.number for r in revisions(api, namespace, release)]
    if not history:
        raise DeployError(
            f"release {release} has no revisions in namespace {namespace}: nothing to roll back"
        )
    if to_revision is None:
        if len(history) < 2:
            raise DeployError(f"release {release} has only revision {history[0]}: nothing to roll back to")
        to_revision = history[-2]
    objects, values, profile = _load_revision(api, namespace, release, to_revision)
    objects = _reconcile(api, objects, namespace, None)
    return _release(
        api,
        objects,
        values,
        profile,
        namespace,
        release,
        f"rollback to {to_revision}",
        wait_seconds,
        poll_seconds,
    )


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
