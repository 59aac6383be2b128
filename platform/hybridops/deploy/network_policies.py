"""NetworkPolicy semantics, evaluated offline: whether the policies of a pod allow traffic with a peer.

``podSelector``, ``namespaceSelector``, ``ipBlock``, ports by number, name and range, ``policyTypes``,
several policies OR-ed, a pod no policy selects is not isolated (as a CNI that enforces them does).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hybridops.deploy.release_pods import Pod


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
