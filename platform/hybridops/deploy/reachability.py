"""Which connections a release's NetworkPolicies allow, evaluated offline from its manifests.

:func:`hybridops.deploy.render_connections.expected_connections` derives every connection a workload of a
render makes. :func:`unreachable` checks each connection as a CNI that enforces NetworkPolicies would: the
client pod's egress policies and the server pod's ingress policies must both allow it (the semantics in
:mod:`hybridops.deploy.network_policies`). A Service name resolves to the pods its selector picks (the
release's pods: :mod:`hybridops.deploy.release_pods`) and to the port its ``targetPort`` names.

Nothing here needs a cluster or Dagster; a rehearsal that records the connections its processes really
open can check them with :func:`unreachable` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hybridops.deploy.network_policies import _allowed, _Policy, selects
from hybridops.deploy.release_pods import Pod, _services, pods
from hybridops.deploy.render_connections import KUBE_API, Connection

KUBE_DNS_LABELS = {"k8s-app": "kube-dns"}


@dataclass(frozen=True)
class Unreachable:
    connection: Connection
    reason: str

    def __str__(self) -> str:
        c = self.connection
        return f"{c.client} -> {c.host}:{c.port}/{c.protocol} ({c.source}): {self.reason}"


def _split_host(host: str, namespace: str) -> tuple[str, str | None]:
    """``name[.ns[.svc[.cluster.local]]]`` -> (name, ns); a host that is not a Service name -> (host, None)."""
    host = host.rstrip(".")
    parts = host.split(".")
    if len(parts) == 1:
        return host, namespace
    suffix = ".".join(parts[2:])
    if suffix in ("", "svc", "svc.cluster.local"):
        return parts[0], parts[1]
    return host, None


@dataclass
class _Target:
    pod: Pod
    port: int
    protocol: str


def _resolve(
    connection: Connection,
    pods_: Mapping[str, Pod],
    services: Mapping[tuple[str, str], Mapping[str, Any]],
    namespace: str,
) -> list[_Target] | str:
    """The pods and container port behind ``host:port``, or why there are none."""
    if connection.host == "kube-dns":
        return [
            _Target(
                Pod("kube-dns", "kube-system", dict(KUBE_DNS_LABELS)), connection.port, connection.protocol
            )
        ]
    if connection.host in (KUBE_API, "kubernetes.default", "kubernetes.default.svc.cluster.local"):
        return [_Target(Pod(KUBE_API, "", None, in_cluster=False), connection.port, connection.protocol)]
    if connection.host.startswith("pod:"):  # a pod scraped at its own IP (PodMonitor)
        named = [p for p in pods_.values() if p.name == connection.host[4:]]
        if not named:
            return f"no pod {connection.host[4:]}"
        return [_Target(named[0], connection.port, connection.protocol)]
    name, ns = _split_host(connection.host, namespace)
    if ns is None:  # an address outside the cluster's pods
        return [
            _Target(Pod(connection.host, "", None, in_cluster=False), connection.port, connection.protocol)
        ]
    service = services.get((name, ns))
    if service is None:
        if ns == namespace and "." not in connection.host:
            return f"no Service {name} in namespace {ns}"
        # A Service of another namespace (an external database): its pods' labels are unknown.
        return [_Target(Pod(connection.host, ns, None), connection.port, connection.protocol)]
    spec = service["spec"]
    entries = [p for p in spec.get("ports", []) if int(p["port"]) == connection.port]
    if not entries:
        return f"Service {name} has no port {connection.port}"
    entry = entries[0]
    protocol = entry.get("protocol", "TCP")
    backing = [p for p in pods_.values() if p.namespace == ns and spec.get("selector") and selects(
        {"matchLabels": spec["selector"]}, p.labels)]  # fmt: skip
    if not backing:
        return f"Service {name} selects no pod of the release"
    targets = []
    for pod in backing:
        target = entry.get("targetPort", entry["port"])
        if isinstance(target, str) and not target.isdigit():
            if target not in pod.ports:
                return f"{pod.name} has no port named {target} (Service {name})"
            targets.append(_Target(pod, pod.ports[target][0], protocol))
        else:
            targets.append(_Target(pod, int(target), protocol))
    return targets


def _client(connection: Connection, pods_: Mapping[str, Pod]) -> Pod | str:
    if connection.client_namespace is not None:
        return Pod(connection.client, connection.client_namespace, None)
    for key, pod in pods_.items():
        if connection.client in (key, pod.name, pod.name.split("/", 1)[1]):
            return pod
    return f"no workload {connection.client} in the render"


def unreachable(
    manifests: Sequence[Mapping[str, Any]],
    connections: Iterable[Connection | tuple[str, str, int]],
    namespace: str = "hybridops",
    namespaces: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Unreachable]:
    """The connections the render's NetworkPolicies block (client egress or server ingress), with why.

    ``connections`` are :class:`Connection` or ``(client, host, port)`` tuples (TCP); their clients are workloads of the render by component label, workload name or
    ``Kind/name`` (or pods of another namespace, with ``client_namespace`` set); hosts are Service names
    (short or ``name.ns.svc[.cluster.local]``), ``kube-dns``, or addresses outside the cluster.
    ``namespaces`` gives extra labels of namespaces (``kubernetes.io/metadata.name`` is always set).
    """
    namespaces = namespaces or {}
    pods_ = pods(manifests, namespace)
    services = _services(manifests, namespace)
    policies = [
        _Policy(o["metadata"].get("namespace", namespace), o["spec"], o["metadata"]["name"])
        for o in manifests
        if o["kind"] == "NetworkPolicy"
    ]
    out = []
    for item in connections:
        connection = item if isinstance(item, Connection) else Connection(*item, source="given")
        client = _client(connection, pods_)
        if isinstance(client, str):
            out.append(Unreachable(connection, client))
            continue
        targets = _resolve(connection, pods_, services, namespace)
        if isinstance(targets, str):
            out.append(Unreachable(connection, targets))
            continue
        for target in targets:
            ok, blocking = _allowed(
                policies,
                "Egress",
                client,
                target.pod,
                target.port,
                target.protocol,
                target.pod.ports,
                namespaces,
            )
            if not ok:
                out.append(Unreachable(connection, f"egress of {client.name} denied (policies {blocking})"))
                break
            ok, blocking = _allowed(
                policies,
                "Ingress",
                target.pod,
                client,
                target.port,
                target.protocol,
                target.pod.ports,
                namespaces,
            )
            if not ok:
                out.append(
                    Unreachable(
                        connection, f"ingress of {target.pod.name} port {target.port} denied ({blocking})"
                    )
                )
                break
    return out
