"""The connections a release's workloads make, derived offline from its manifests.

:func:`expected_connections` finds the servers each workload's environment, its mounted config files
(ConfigMaps, Secrets) and the Prometheus scrape targets name as ``host:port`` or URLs, the monitors of an
external Prometheus, and DNS; :func:`hybridops.deploy.reachability.unreachable` checks them against the
release's NetworkPolicies.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from hybridops.deploy.network_policies import selects
from hybridops.deploy.release_pods import Pod, _services, pods

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
