"""Which connections a release's NetworkPolicies allow, evaluated offline from its manifests.

:func:`expected_connections` derives every connection a workload of a render makes: the servers its
environment, its mounted config files (ConfigMaps, Secrets) and the Prometheus scrape targets name as
``host:port`` or URLs, the monitors of an external Prometheus, and DNS. :func:`unreachable` checks each
connection as a CNI that enforces NetworkPolicies would: the client pod's egress policies and the server
pod's ingress policies must both allow it (``podSelector``, ``namespaceSelector``, ``ipBlock``, ports by
number, name and range, ``policyTypes``, several policies OR-ed, a pod no policy selects is not isolated).
A Service name resolves to the pods its selector picks and to the port its ``targetPort`` names.

Nothing here needs a cluster or Dagster; a rehearsal that records the connections its processes really
open can check them with :func:`unreachable` too.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
RUN_POD = "dagster-run"
KUBE_DNS_LABELS = {"k8s-app": "kube-dns"}
KUBE_API = "kubernetes.default.svc"
"""The API server: its Service forwards outside the pod network (the control plane's address)."""
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "redis": 6379, "grpc": 443}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?:[^@/\s]*@)?(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?"
)
_HOSTPORT = re.compile(
    r"(?<![\w./:@$-])(?:[^\s@/:,]+(?::[^\s@/,]*)?@)?(?P<host>[A-Za-z][A-Za-z0-9.-]*|\d{1,3}(?:\.\d{1,3}){3})"
    r":(?P<port>\d{1,5})(?![\w.])"
)


@dataclass(frozen=True)
class Connection:
    """``client`` (a workload's component label, e.g. ``inference``) opens ``host:port``."""

    client: str
    host: str
    port: int
    protocol: str = "TCP"
    source: str = ""  # where the connection was found (env var, config file key, scrape job)
    client_namespace: str | None = None  # set for a client outside the release (an external Prometheus)


@dataclass(frozen=True)
class Unreachable:
    connection: Connection
    reason: str

    def __str__(self) -> str:
        c = self.connection
        return f"{c.client} -> {c.host}:{c.port}/{c.protocol} ({c.source}): {self.reason}"


@dataclass
class Pod:
    """A pod template of the release (or a stand-in for a pod outside it)."""

    name: str
    namespace: str
    labels: dict[str, str] | None  # None: a pod outside the release whose labels are unknown
    ports: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (containerPort, protocol)
    spec: dict[str, Any] = field(default_factory=dict)
    in_cluster: bool = True  # False: an address outside the cluster's pods (API server, external host)


# --- selectors and policies --------------------------------------------------------------------------------


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """A LabelSelector against labels (an empty selector selects everything; unknown labels match only it)."""
    selector = selector or {}
    if labels is None:
        return not selector.get("matchLabels") and not selector.get("matchExpressions")
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, values = expr["key"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[expr["operator"]]
        if not ok:
            return False
    return True


def _policy_types(spec: Mapping[str, Any]) -> list[str]:
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", *(["Egress"] if "egress" in spec else [])]


def _namespace_labels(namespace: str, namespaces: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace, **namespaces.get(namespace, {})}


def _peer_matches(
    peer: Mapping[str, Any], policy_ns: str, pod: Pod, namespaces: Mapping[str, Mapping[str, str]]
) -> bool:
    if "ipBlock" in peer:
        # Pod IPs are unknown offline; an address outside the cluster matches only a block of every address.
        block = peer["ipBlock"]
        everything = ipaddress.ip_network(block["cidr"]).prefixlen == 0 and not block.get("except")
        return everything and not pod.in_cluster
    if not pod.in_cluster:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], _namespace_labels(pod.namespace, namespaces)):
            return False
    elif pod.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], pod.labels)


def _port_matches(
    rule: Mapping[str, Any], port: int, protocol: str, named: Mapping[str, tuple[int, str]]
) -> bool:
    """A rule's ports against the destination port (``named``: the destination pod's named ports)."""
    if not rule.get("ports"):
        return True
    for entry in rule["ports"]:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str) and not wanted.isdigit():
            if wanted in named and named[wanted] == (port, protocol):
                return True
            continue
        low = int(wanted)
        if low <= port <= int(entry.get("endPort", low)):
            return True
    return False


@dataclass
class _Policy:
    namespace: str
    spec: dict[str, Any]
    name: str


def _allowed(
    policies: Sequence[_Policy],
    direction: str,
    subject: Pod,
    peer: Pod,
    port: int,
    protocol: str,
    named: Mapping[str, tuple[int, str]],
    namespaces: Mapping[str, Mapping[str, str]],
) -> tuple[bool, list[str]]:
    """Whether ``subject``'s policies of ``direction`` allow traffic with ``peer``; the selecting policies."""
    selecting = [
        p
        for p in policies
        if p.namespace == subject.namespace
        and direction in _policy_types(p.spec)
        and selects(p.spec.get("podSelector"), subject.labels)
    ]
    if not selecting:
        return True, []  # not isolated in this direction
    key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in selecting:
        for rule in policy.spec.get(key) or []:
            if not _port_matches(rule, port, protocol, named):
                continue
            if not rule.get(peers) or any(
                _peer_matches(p, policy.namespace, peer, namespaces) for p in rule[peers]
            ):
                return True, []
    return False, [p.name for p in selecting]


# --- the release's pods and services -------------------------------------------------------------------------


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


# --- the connections a render makes --------------------------------------------------------------------------


def _endpoints(text: str) -> Iterator[tuple[str, int]]:
    """``host:port`` of every URL or bare ``host:port`` in a string (default ports by URL scheme)."""
    spans = []
    for match in _URL.finditer(text):
        spans.append(match.span())
        scheme = match["scheme"].split("+")[0]
        port = match["port"] or DEFAULT_PORTS.get(scheme)
        if port and scheme not in {"file", "sqlite", "s3"}:
            yield match["host"].strip("[]"), int(port)
    for match in _HOSTPORT.finditer(text):
        if not any(a <= match.start() < b for a, b in spans):
            yield match["host"], int(match["port"])


def _walk(node: Any, where: str) -> Iterator[tuple[str, int, str]]:
    """Servers a parsed config names: strings, ``{host|hostname, port}`` maps, Prometheus ``dns_sd_configs``."""
    if isinstance(node, Mapping):
        host = node.get("hostname", node.get("host"))
        if isinstance(host, str) and isinstance(node.get("port"), int | str) and str(node["port"]).isdigit():
            yield host, int(node["port"]), where
        if isinstance(node.get("names"), list) and str(node.get("port", "")).isdigit():
            for name in node["names"]:
                yield str(name), int(node["port"]), where
        for key, value in node.items():
            if key == "run_launcher":  # the run pods' config: their connections, not this pod's
                continue
            yield from _walk(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}[{i}]")
    elif isinstance(node, str):
        for host, port in _endpoints(node):
            yield host, port, where


def _parse(text: str) -> Any:
    """A config file's content: YAML/JSON when it parses, else the text itself."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _config_data(objs: Sequence[Mapping[str, Any]], kind: str, name: str, ns: str) -> dict[str, str]:
    for obj in objs:
        if (
            obj["kind"] == kind
            and obj["metadata"]["name"] == name
            and obj["metadata"].get("namespace", ns) == ns
        ):
            data = dict(obj.get("data") or {})
            if kind == "Secret":
                data = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
                data.update(obj.get("stringData") or {})
            return data
    return {}


def _env(objs: Sequence[Mapping[str, Any]], container: Mapping[str, Any], ns: str) -> dict[str, str]:
    """A container's environment as the kubelet builds it (``$(VAR)`` expanded, secrets as ``secret``)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                env.update(_config_data(objs, kind, source[key]["name"], ns))
    for item in container.get("env", []):
        value = item.get("value", "secret" if "valueFrom" in item else "")
        env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(value))
    return env


def _mounted_files(objs: Sequence[Mapping[str, Any]], pod: Pod) -> Iterator[tuple[str, str]]:
    mounted = {m["name"] for c in pod.spec.get("containers", []) for m in c.get("volumeMounts", [])}
    for volume in pod.spec.get("volumes", []):
        if volume["name"] not in mounted:
            continue
        sources = [volume, *(volume.get("projected") or {}).get("sources", [])]
        for source in sources:
            for kind, key, name_key in (
                ("ConfigMap", "configMap", "name"),
                ("Secret", "secret", "secretName"),
            ):
                if key in source:
                    name = source[key].get(name_key) or source[key].get("name")
                    for file, text in _config_data(objs, kind, name, pod.namespace).items():
                        yield f"{kind}/{name}:{file}", text


def expected_connections(
    manifests: Sequence[Mapping[str, Any]], namespace: str = "hybridops", scraper_namespace: str | None = None
) -> list[Connection]:
    """Every connection the render's workloads make, found in their env, their mounted config files and the
    Prometheus scrape config (loopback excluded), plus DNS for each client, plus the scrapes of an external
    Prometheus in ``scraper_namespace`` (from the ServiceMonitors/PodMonitors; default the namespace the
    chart's ingress policies name for it, when there are monitors)."""
    objs = list(manifests)
    pods_ = pods(objs, namespace)
    found: dict[tuple[str, str, int], Connection] = {}
    for component, pod in pods_.items():
        sources: list[tuple[str, int, str]] = []
        for container in [*pod.spec.get("initContainers", []), *pod.spec.get("containers", [])]:
            for key, value in _env(objs, container, pod.namespace).items():
                parsed = json.loads(value) if value[:1] in "[{" and _is_json(value) else value
                sources.extend(_walk(parsed, f"env {key}"))
        for where, text in _mounted_files(objs, pod):
            sources.extend(_walk(_parse(text), where))
        if pod.spec.get("automountServiceAccountToken"):
            sources.append((KUBE_API, 443, "service account token (Kubernetes API)"))
        for host, port, where in sources:
            if host in _LOOPBACK or not 0 < port < 65536:
                continue
            found.setdefault((component, host, port), Connection(component, host, port, source=where))
        if sources:
            found.setdefault(
                (component, "kube-dns", 53),
                Connection(component, "kube-dns", 53, protocol="UDP", source="DNS"),
            )
    return [*found.values(), *_monitor_scrapes(objs, namespace, scraper_namespace)]


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _monitor_scrapes(
    objs: Sequence[Mapping[str, Any]], namespace: str, scraper_namespace: str | None
) -> Iterator[Connection]:
    """ServiceMonitor/PodMonitor endpoints, scraped by a Prometheus of ``scraper_namespace``."""
    monitors = [o for o in objs if o["kind"] in ("ServiceMonitor", "PodMonitor")]
    if not monitors:
        return
    scraper_ns = scraper_namespace or _scraper_namespace(objs) or "monitoring"
    services = _services(objs, namespace)
    pods_ = pods(objs, namespace)
    for monitor in monitors:
        spec = monitor["spec"]
        ns = next(iter((spec.get("namespaceSelector") or {}).get("matchNames", [])), namespace)
        if monitor["kind"] == "ServiceMonitor":
            for (name, service_ns), service in services.items():
                if service_ns != ns or not selects(spec["selector"], service["metadata"].get("labels", {})):
                    continue
                for endpoint in spec.get("endpoints", []):
                    for port in service["spec"]["ports"]:
                        if port.get("name") == endpoint.get("port"):
                            yield Connection(
                                f"prometheus@{scraper_ns}", name, int(port["port"]),
                                source=f"ServiceMonitor/{monitor['metadata']['name']}", client_namespace=scraper_ns,
                            )  # fmt: skip
        else:
            for pod in pods_.values():
                if pod.namespace != ns or not selects(spec["selector"], pod.labels):
                    continue
                for endpoint in spec.get("podMetricsEndpoints", []):
                    if endpoint.get("port") in pod.ports:
                        # Scraped at the pod's IP: model it as the pod's own port through a per-pod name.
                        yield Connection(
                            f"prometheus@{scraper_ns}", f"pod:{pod.name}", pod.ports[endpoint["port"]][0],
                            source=f"PodMonitor/{monitor['metadata']['name']}", client_namespace=scraper_ns,
                        )  # fmt: skip


def _scraper_namespace(objs: Sequence[Mapping[str, Any]]) -> str | None:
    """The namespace the chart's ingress policies let scrape (``monitoring.external.prometheusNamespace``)."""
    for obj in objs:
        if obj["kind"] == "NetworkPolicy" and "prometheus-scrape" in obj["metadata"]["name"]:
            for rule in obj["spec"].get("ingress", []):
                for peer in rule.get("from", []):
                    name = (
                        (peer.get("namespaceSelector") or {})
                        .get("matchLabels", {})
                        .get("kubernetes.io/metadata.name")
                    )
                    if name:
                        return str(name)
    return None
