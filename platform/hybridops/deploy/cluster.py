"""Install, upgrade, inspect and roll back the chart on a cluster with the ``kubernetes`` client, as Helm does.

There is no helm binary and ``helm_python`` has no install API, so a deploy renders the chart offline
(:mod:`hybridops.deploy.chart`) and server-side applies every object (field manager ``helm``, with Helm's
ownership label and annotations). Every deploy and rollback is a Helm revision: a record in Helm's own
storage format (:mod:`hybridops.deploy.releases`), so ``helm list``, ``helm history``, ``helm rollback``,
``helm uninstall`` and a later ``helm upgrade`` see and continue releases made here, and ``hybridops
deploy`` upgrades releases that ``helm install`` made. Statuses follow Helm's actions (``pending-*``,
``deployed``, ``superseded``, ``failed``); objects the previous deployed revision had and the new one has
not are deleted (pruned). Records hybridops wrote before (``hybridops-release-<release>-v<N>``) are read,
and rewritten as Helm's on the next deploy or rollback.

An offline render cannot ``lookup`` the cluster, so generated Secrets (``helm.sh/resource-policy: keep``)
would get new random passwords on every deploy: a deploy keeps the data of those that already exist, and
keeps the live value of pod-template ``checksum/*`` annotations that hash such a Secret (they match no
rendered template), so upgrades neither change passwords nor roll pods for nothing.

Helm hooks (objects annotated ``helm.sh/hook``) are kept out of the release's manifest and run after the
release's objects are ready, as Helm runs them (:mod:`hybridops.deploy.hooks`; the chart's PostgreSQL role
Job on every upgrade). The release records do not keep the hooks (Helm's ``hooks`` field), so a rollback
runs none.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hybridops.deploy import chart, hooks, releases
from hybridops.deploy.kube import (
    WORKLOAD_KINDS,
    DeployError,
    _api_message,
    _apply,
    _call,
    _get,
    _path,
)
from hybridops.errors import HybridopsError

OWNER_LABEL = "owner"
KEEP_ANNOTATION = "helm.sh/resource-policy"
CONNECT_TIMEOUT = 5.0
_WAITING_OK = {"ContainerCreating", "PodInitializing"}


class ClusterUnavailable(HybridopsError):
    """No kubeconfig or in-cluster config, or the API server does not answer."""


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
    chart: str = ""


@dataclass
class DeployReport:
    release: str
    namespace: str
    revision: int
    applied: int
    pruned: list[str]
    workloads: list[WorkloadStatus]
    hooks: list[str] = field(default_factory=list)  # the hooks run after the release was ready

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


def _unpack(data: str) -> str:
    return gzip.decompress(base64.b64decode(data)).decode()


def _secret_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/secrets" + (f"/{name}" if name else "")


def _records(api: client.ApiClient, namespace: str, release: str) -> list[releases.Release]:
    """Helm's records of a release (written by helm or by hybridops), oldest first."""
    found = _get(api, _secret_path(namespace), query=[("labelSelector", f"owner=helm,name={release}")])
    out = []
    for item in (found or {}).get("items") or []:
        try:
            out.append(releases.from_secret(item))
        except (KeyError, ValueError, OSError) as exc:
            raise DeployError(
                f"Secret {item['metadata']['name']} in {namespace} is not a readable Helm release record "
                f"({_one_line(exc)}): inspect it with kubectl, delete it if it is stray"
            ) from None
    return sorted(out, key=lambda r: r.version)


def _legacy_secrets(api: client.ApiClient, namespace: str, release: str) -> list[dict[str, Any]]:
    """Records of hybridops before it wrote Helm's (``hybridops-release-<release>-v<N>``)."""
    found = _get(
        api, _secret_path(namespace), query=[("labelSelector", f"{OWNER_LABEL}=hybridops,release={release}")]
    )
    items = (found or {}).get("items") or []
    return sorted(items, key=lambda s: int(s["metadata"]["labels"]["revision"]))


def _from_legacy(
    secret: dict[str, Any], namespace: str, release: str, chart_obj: dict[str, Any]
) -> releases.Release:
    labels = secret["metadata"].get("labels") or {}
    notes = secret["metadata"].get("annotations") or {}
    data = secret.get("data") or {}
    objects = [doc for doc in yaml.safe_load_all(_unpack(data["manifests"])) if doc]
    values = (yaml.safe_load(_unpack(data["values"])) if "values" in data else None) or {}
    stamp = notes.get("hybridops/deployed-at", "").replace("+00:00", "Z")
    status = labels.get("status", "unknown")
    profile = notes.get("hybridops/profile", "")
    return releases.Release(
        name=release,
        namespace=namespace,
        version=int(labels["revision"]),
        status=releases.FAILED if status == "pending" else status,
        description=notes.get("hybridops/description", ""),
        manifest=releases.join_manifest(releases.Document("", o) for o in objects),
        config=values,
        # the old records kept no chart: the chart of this hybridops stands in for it
        chart=chart_obj,
        first_deployed=stamp,
        last_deployed=stamp,
        labels={releases.PROFILE_LABEL: profile} if profile else {},
    )


def history(api: client.ApiClient, namespace: str, release: str) -> list[releases.Release]:
    """Every revision of a release: Helm's records, else those hybridops wrote in its old format."""
    found = _records(api, namespace, release)
    if found:
        return found
    legacy = _legacy_secrets(api, namespace, release)
    if not legacy:
        return []
    chart_obj = releases.chart_object(chart.CHART_DIR)
    out = [_from_legacy(s, namespace, release, chart_obj) for s in legacy]
    first = out[0].first_deployed
    for rel in out:
        rel.first_deployed = first
    return out


def _migrate(api: client.ApiClient, namespace: str, release: str) -> list[releases.Release]:
    """Rewrite old-format records as Helm's (same revisions), then delete the old ones."""
    found = _records(api, namespace, release)
    if found:
        return found
    converted = history(api, namespace, release)
    for rel in converted:
        _create_record(api, namespace, rel)
    for secret in _legacy_secrets(api, namespace, release):
        _call(api, "DELETE", _secret_path(namespace, secret["metadata"]["name"]))
    return converted


def revisions(api: client.ApiClient, namespace: str, release: str) -> list[Revision]:
    return [
        Revision(
            number=r.version,
            status=r.status,
            profile=r.profile,
            deployed_at=r.last_deployed,
            description=r.description,
            chart=r.chart_ref,
        )
        for r in history(api, namespace, release)
    ]


def _create_record(api: client.ApiClient, namespace: str, rel: releases.Release) -> None:
    """Helm's ``Create``: fails when the revision exists (another install/upgrade/rollback won the race)."""
    try:
        _call(api, "POST", _secret_path(namespace), body=releases.secret(rel, namespace, created=True))
    except ApiException as exc:
        if exc.status == 409:
            raise DeployError(
                f"release {rel.name} revision {rel.version} already exists in {namespace}: another "
                "install, upgrade or rollback is running; retry when it is done"
            ) from None
        raise DeployError(
            f"recording release {rel.name} revision {rel.version} failed: {exc.status} {_api_message(exc)}"
        ) from None


def _update_record(api: client.ApiClient, namespace: str, rel: releases.Release) -> None:
    """Helm's ``Update``: replace the revision's Secret."""
    try:
        _call(
            api, "PUT", _secret_path(namespace, rel.secret_name), body=releases.secret(rel, namespace, False)
        )
    except ApiException as exc:
        raise DeployError(
            f"updating release {rel.name} revision {rel.version} failed: {exc.status} {_api_message(exc)}"
        ) from None


# ---------------------------------------------------------------------- generated secrets and checksums


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


def _ownership(obj: dict[str, Any], release: str, namespace: str) -> dict[str, Any]:
    """The object with Helm's ownership metadata (``setMetadataVisitor``): helm adopts only such objects."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta["labels"] = {**(meta.get("labels") or {}), "app.kubernetes.io/managed-by": "Helm"}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        "meta.helm.sh/release-name": release,
        "meta.helm.sh/release-namespace": namespace,
    }
    return obj


def _check_ownership(
    api: client.ApiClient,
    docs: list[releases.Document],
    current: releases.Release | None,
    release: str,
    namespace: str,
) -> None:
    """Helm's ``existingResourceConflict``: an object the release did not have may exist only if it
    already belongs to this release (Helm's ownership metadata); never take over another release's objects
    or objects made by hand."""
    had = {_key(d.obj, namespace) for d in current.documents()} if current else set()
    for doc in docs:
        if _key(doc.obj, namespace) in had:
            continue
        api_version, kind, ns, name = _key(doc.obj, namespace)
        live = _get(api, _path(api_version, kind, ns, name))
        if live is None:
            continue
        meta = live.get("metadata") or {}
        notes, labels = meta.get("annotations") or {}, meta.get("labels") or {}
        owner = (notes.get("meta.helm.sh/release-name"), notes.get("meta.helm.sh/release-namespace"))
        if owner != (release, namespace) or labels.get("app.kubernetes.io/managed-by") != "Helm":
            found = f"release {owner[0]} in {owner[1]}" if owner[0] else "no Helm release"
            raise DeployError(
                f"{kind}/{name} already exists in {ns} and belongs to {found}: it cannot be taken into release "
                f"{release} (Helm's ownership metadata differs); delete it, or deploy under another "
                "--release or --namespace"
            )


def _current(history: list[releases.Release]) -> releases.Release | None:
    """The release an upgrade starts from, as Helm picks it: the deployed one, else a failed/superseded last."""
    if not history or history[-1].status == releases.UNINSTALLED:
        return None
    deployed = [r for r in history if r.status == releases.DEPLOYED]
    if deployed:
        return deployed[-1]
    return history[-1] if history[-1].status in (releases.FAILED, releases.SUPERSEDED) else None


def _release(
    api: client.ApiClient,
    docs: list[releases.Document],
    new: releases.Release,
    current: releases.Release | None,
    action: str,
    wait_seconds: float,
    poll_seconds: float,
    release_hooks: Sequence[hooks.Hook] = (),
) -> DeployReport:
    """Record ``new`` as pending, apply it, prune what ``current`` had and ``new`` has not, wait, run the
    action's post hooks (:mod:`hybridops.deploy.hooks`), settle.

    The statuses follow Helm's actions: on success every deployed revision becomes ``superseded`` and
    ``new`` ``deployed``; on failure ``new`` is ``failed`` (a failed rollback also supersedes the
    revision it started from).
    """
    namespace, release = new.namespace, new.name
    _check_ownership(api, docs, current, release, namespace)
    _create_record(api, namespace, new)
    objects = [d.obj for d in docs]
    failure = ""
    pruned: list[str] = []
    workloads: list[WorkloadStatus] = []
    try:
        for obj in objects:
            _apply(api, _ownership(obj, release, namespace), namespace)
        previous = [d.obj for d in current.documents()] if current else []
        pruned = _prune(api, previous, objects, namespace)
    except DeployError as exc:
        failure = str(exc)
    if not failure:
        workloads = wait_ready(api, objects, namespace, wait_seconds, poll_seconds)
        stuck = [w.name for w in workloads if not w.ready]
        if stuck:
            failure = f"not ready after {wait_seconds:g}s: {', '.join(stuck)}"
    ran: list[str] = []
    hook_failed = False
    if not failure:
        try:
            ran = hooks.run(api, release_hooks, action, namespace, wait_seconds, poll_seconds)
        except DeployError as exc:
            failure, hook_failed = str(exc), True
    if failure:
        verb = {"install": "Release", "upgrade": "Upgrade", "rollback": "Rollback"}[action]
        new.status, new.description = releases.FAILED, f'{verb} "{release}" failed: {failure}'
        if action == "rollback" and current is not None and current.status != releases.SUPERSEDED:
            current.status = releases.SUPERSEDED
            _update_record(api, namespace, current)
        _update_record(api, namespace, new)
        if not workloads or hook_failed:  # ready workloads would not say that the release failed
            raise DeployError(f"{new.description} (revision {new.version} recorded as failed)")
    else:
        for old in _records(api, namespace, release):
            if old.version != new.version and old.status == releases.DEPLOYED:
                old.status = releases.SUPERSEDED
                _update_record(api, namespace, old)
        new.status = releases.DEPLOYED
        new.description = {"install": "Install complete", "upgrade": "Upgrade complete"}.get(
            action, new.description
        )
        _update_record(api, namespace, new)
    return DeployReport(release, namespace, new.version, len(objects), pruned, workloads, ran)


def _guard(history: list[releases.Release], release: str) -> None:
    if history and history[-1].status in releases.PENDING:
        last = history[-1]
        raise DeployError(
            f"another operation (install/upgrade/rollback) is in progress on release {release}: revision "
            f"{last.version} is {last.status}; wait for it, or if it died, roll back (hybridops rollback)"
        )


def deploy(
    api: client.ApiClient,
    profile: str,
    values_files: Sequence[Path] = (),
    namespace: str = chart.DEFAULT_NAMESPACE,
    release: str = chart.DEFAULT_RELEASE,
    wait_seconds: float = 300,
    poll_seconds: float = 2.0,
) -> DeployReport:
    """``helm upgrade --install``: render offline, record a Helm revision, apply, prune, wait for rollouts."""
    rendered = chart.render(profile, values_files, namespace, release)
    values = chart.user_values(profile, values_files)
    _ensure_namespace(api, namespace)
    history = _migrate(api, namespace, release)
    _guard(history, release)
    current = _current(history)
    template_hashes = {hashlib.sha256(text.encode()).hexdigest() for text in rendered.values()}
    # Hooks are kept out of the release's manifest, as Helm keeps them: never applied with it nor pruned.
    docs, release_hooks = hooks.split(releases.documents(rendered))
    _reconcile(api, [d.obj for d in docs], namespace, template_hashes)
    action = "upgrade" if current is not None else "install"
    stamp = releases.now()
    new = releases.Release(
        name=release,
        namespace=namespace,
        version=history[-1].version + 1 if history else 1,
        status=f"pending-{action}",
        description=f"Preparing {action}",
        manifest=releases.join_manifest(docs),
        config=values,
        chart=releases.chart_object(chart.CHART_DIR),
        first_deployed=current.first_deployed if current else stamp,
        last_deployed=stamp,
        labels={**(history[-1].labels if history else {}), releases.PROFILE_LABEL: profile},
    )
    return _release(api, docs, new, current, action, wait_seconds, poll_seconds, release_hooks)


def rollback(
    api: client.ApiClient,
    namespace: str = chart.DEFAULT_NAMESPACE,
    release: str = chart.DEFAULT_RELEASE,
    to_revision: int | None = None,
    wait_seconds: float = 300,
    poll_seconds: float = 2.0,
) -> DeployReport:
    """``helm rollback``: re-apply an earlier revision's manifest (default: the previous one) as a new one."""
    history = _migrate(api, namespace, release)
    if not history:
        raise DeployError(
            f"release {release} has no revisions in namespace {namespace}: nothing to roll back"
        )
    _guard(history, release)
    last = history[-1]
    if to_revision is None:
        if last.version < 2:
            raise DeployError(f"release {release} has only revision {last.version}: nothing to roll back to")
        to_revision = last.version - 1
    target = next((r for r in history if r.version == to_revision), None)
    if target is None:
        raise DeployError(
            f"release {release} has no revision {to_revision} in namespace {namespace} "
            f"(revisions: {', '.join(str(r.version) for r in history)})"
        )
    docs = target.documents()
    _reconcile(api, [d.obj for d in docs], namespace, None)
    new = releases.Release(
        name=release,
        namespace=namespace,
        version=last.version + 1,
        status="pending-rollback",
        description=f"Rollback to {to_revision}",
        manifest=releases.join_manifest(docs),
        config=target.config,
        chart=target.chart,
        first_deployed=last.first_deployed,
        last_deployed=releases.now(),
        notes=target.notes,
        labels=dict(target.labels),
        apply_method="ssa",
    )
    return _release(api, docs, new, last, "rollback", wait_seconds, poll_seconds)


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
