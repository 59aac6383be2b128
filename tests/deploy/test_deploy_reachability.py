"""NetworkPolicy reachability: the evaluator's semantics on small hand-written policies, then every
connection of every profile and CI values file allowed by the chart's own policies."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from deploy_support import CASES, objects

from hybridops.deploy import chart
from hybridops.deploy.reachability import unreachable
from hybridops.deploy.render_connections import Connection, expected_connections

NS = "apps"


def deployment(
    name: str, labels: dict[str, str], ports: dict[str, int] | None = None, **container: Any
) -> dict:
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/component": name, **labels}},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "ports": [{"name": n, "containerPort": p} for n, p in (ports or {}).items()],
                            **container,
                        }
                    ]
                },
            }
        },
    }


def service(name: str, selector: dict[str, str], port: int, target: int | str) -> dict:
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": selector, "ports": [{"port": port, "targetPort": target}]},
    }


def policy(name: str, selector: dict, types: list[str], **rules: Any) -> dict:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"podSelector": selector, "policyTypes": types, **rules},
    }


DENY_ALL = policy("deny", {}, ["Ingress", "Egress"])
DB_POD = deployment("db", {"app": "db"}, {"pg": 5432})
WEB_POD = deployment("web", {"app": "web"})
DB_SVC = service("db", {"app": "db"}, 5432, "pg")
TO_DB = Connection("web", "db", 5432)


def blocked(objs: list[dict], *connections: Connection) -> list[str]:
    return [u.reason for u in unreachable(objs, connections, namespace=NS)]


def test_no_policy_allows_everything() -> None:
    assert blocked([DB_POD, WEB_POD, DB_SVC], TO_DB) == []
    # (client, host, port) tuples too, as a rehearsal records the connections it saw
    assert unreachable([DB_POD, WEB_POD, DB_SVC], [("web", "db", 5432)], namespace=NS) == []
    (found,) = unreachable([DB_POD, WEB_POD, DB_SVC, DENY_ALL], [("web", "db", 5432)], namespace=NS)
    assert found.connection == Connection("web", "db", 5432, source="given")


def test_default_deny_blocks_egress_first_then_ingress() -> None:
    (reason,) = blocked([DB_POD, WEB_POD, DB_SVC, DENY_ALL], TO_DB)
    assert reason.startswith("egress of Deployment/web denied")
    egress = policy("web-out", {"matchLabels": {"app": "web"}}, ["Egress"], egress=[{}])
    (reason,) = blocked([DB_POD, WEB_POD, DB_SVC, DENY_ALL, egress], TO_DB)
    assert reason.startswith("ingress of Deployment/db port 5432 denied")


def test_ingress_by_named_port_and_pod_selector() -> None:
    egress = policy("out", {}, ["Egress"], egress=[{}])
    allow = policy(
        "db-in",
        {"matchLabels": {"app": "db"}},
        ["Ingress"],
        ingress=[{"ports": [{"port": "pg"}], "from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}],
    )
    objs = [DB_POD, WEB_POD, DB_SVC, DENY_ALL, egress, allow]
    assert blocked(objs, TO_DB) == []
    other = deployment("batch", {"app": "batch"})
    assert len(blocked([*objs, other], Connection("batch", "db", 5432))) == 1  # not selected by the from
    # The named port is the server pod's: a rule on another name does not open 5432.
    renamed = copy.deepcopy(allow)
    renamed["spec"]["ingress"][0]["ports"] = [{"port": "http"}]
    assert len(blocked([DB_POD, WEB_POD, DB_SVC, DENY_ALL, egress, renamed], TO_DB)) == 1


def test_egress_named_port_is_the_destination_pods() -> None:
    egress = policy(
        "web-out", {"matchLabels": {"app": "web"}}, ["Egress"], egress=[{"ports": [{"port": "pg"}]}]
    )
    assert blocked([DB_POD, WEB_POD, DB_SVC, egress], TO_DB) == []
    wrong = policy(
        "web-out", {"matchLabels": {"app": "web"}}, ["Egress"], egress=[{"ports": [{"port": 5433}]}]
    )
    assert len(blocked([DB_POD, WEB_POD, DB_SVC, wrong], TO_DB)) == 1


def test_port_ranges_and_protocols() -> None:
    ranged = policy("out", {}, ["Egress"], egress=[{"ports": [{"port": 5000, "endPort": 6000}]}])
    assert blocked([DB_POD, WEB_POD, DB_SVC, ranged], TO_DB) == []
    udp = policy("out", {}, ["Egress"], egress=[{"ports": [{"port": 5432, "protocol": "UDP"}]}])
    assert len(blocked([DB_POD, WEB_POD, DB_SVC, udp], TO_DB)) == 1


def test_policies_are_ored_and_types_isolate_only_their_direction() -> None:
    narrow = policy("a", {"matchLabels": {"app": "web"}}, ["Egress"], egress=[{"ports": [{"port": 80}]}])
    wide = policy("b", {"matchLabels": {"app": "web"}}, ["Egress"], egress=[{"ports": [{"port": 5432}]}])
    assert len(blocked([DB_POD, WEB_POD, DB_SVC, narrow], TO_DB)) == 1
    assert blocked([DB_POD, WEB_POD, DB_SVC, narrow, wide], TO_DB) == []
    # An Egress-only policy on the server does not isolate its ingress.
    db_egress = policy("c", {"matchLabels": {"app": "db"}}, ["Egress"], egress=[])
    assert blocked([DB_POD, WEB_POD, DB_SVC, db_egress], TO_DB) == []


def test_namespace_and_pod_selectors_in_one_peer_are_anded() -> None:
    both = {
        "namespaceSelector": {"matchLabels": {"team": "data"}},
        "podSelector": {"matchLabels": {"app": "web"}},
    }
    allow = policy("db-in", {"matchLabels": {"app": "db"}}, ["Ingress"], ingress=[{"from": [both]}])
    scraper = Connection("prom", "db.apps.svc.cluster.local", 5432, client_namespace="monitoring")
    objs = [DB_POD, DB_SVC, allow]
    assert len(unreachable(objs, [scraper], namespace=NS, namespaces={"monitoring": {"team": "data"}})) == 1
    ns_only = policy(
        "db-in", {"matchLabels": {"app": "db"}}, ["Ingress"],
        ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "data"}}}]}],
    )  # fmt: skip
    assert (
        unreachable(
            [DB_POD, DB_SVC, ns_only], [scraper], namespace=NS, namespaces={"monitoring": {"team": "data"}}
        )
        == []
    )
    assert (
        len(unreachable([DB_POD, DB_SVC, ns_only], [scraper], namespace=NS)) == 1
    )  # monitoring lacks the label
    # A podSelector alone means pods of the policy's own namespace only.
    same_ns = policy(
        "db-in", {"matchLabels": {"app": "db"}}, ["Ingress"], ingress=[{"from": [{"podSelector": {}}]}]
    )
    assert len(unreachable([DB_POD, DB_SVC, same_ns], [scraper], namespace=NS)) == 1


def test_dns_needs_its_own_egress() -> None:
    dns = Connection("web", "kube-dns", 53, protocol="UDP")
    assert len(blocked([WEB_POD, DENY_ALL], dns)) == 1
    allow_dns = policy(
        "dns", {}, ["Egress"],
        egress=[{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"port": 53, "protocol": "UDP"}]}],
    )  # fmt: skip
    assert blocked([WEB_POD, DENY_ALL, allow_dns], dns) == []


def test_outside_addresses_match_only_rules_without_peers_or_a_block_of_everything() -> None:
    out = Connection("web", "api.example.com", 443)
    to_pods = policy("out", {}, ["Egress"], egress=[{"to": [{"namespaceSelector": {}}]}])
    assert len(blocked([WEB_POD, to_pods], out)) == 1
    any_ip = policy("out", {}, ["Egress"], egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])
    assert blocked([WEB_POD, any_ip], out) == []
    some_ip = policy("out", {}, ["Egress"], egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}])
    assert len(blocked([WEB_POD, some_ip], out)) == 1


def test_services_resolve_to_their_pods_and_target_ports() -> None:
    assert blocked([DB_POD, WEB_POD], TO_DB) == ["no Service db in namespace apps"]
    assert blocked([DB_POD, WEB_POD, DB_SVC], Connection("web", "db", 5433)) == [
        "Service db has no port 5433"
    ]
    unnamed = service("db", {"app": "db"}, 5432, "postgres")
    assert blocked([DB_POD, WEB_POD, unnamed], TO_DB) == [
        "Deployment/db has no port named postgres (Service db)"
    ]
    empty = service("db", {"app": "nothing"}, 5432, 5432)
    assert blocked([DB_POD, WEB_POD, empty], TO_DB) == ["Service db selects no pod of the release"]
    assert blocked([DB_POD, DB_SVC], TO_DB) == ["no workload web in the render"]


def test_connections_come_from_env_config_files_and_scrape_targets() -> None:
    config = {
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": NS},
        "data": {"app.yaml": "database:\n  hostname: db\n  port: 5432\ncache: redis://cache:6379/0\n"},
    }
    web = deployment(
        "web", {"app": "web"},
        env=[{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
             {"name": "DB_URL", "value": "postgresql+psycopg://u:$(PASSWORD)@db.apps.svc:5432/x"},
             {"name": "API", "value": "https://api.example.com/v1"},
             {"name": "IMAGE", "value": "docker.io/team/web:1.2.3"},
             {"name": "BIND", "value": "127.0.0.1:8080"}],
        volumeMounts=[{"name": "cfg", "mountPath": "/etc/app"}],
    )  # fmt: skip
    web["spec"]["template"]["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "cfg"}}]
    found = {
        (c.client, c.host, c.port, c.protocol) for c in expected_connections([web, config], namespace=NS)
    }
    assert found == {
        ("web", "db.apps.svc", 5432, "TCP"),
        ("web", "api.example.com", 443, "TCP"),
        ("web", "db", 5432, "TCP"),
        ("web", "cache", 6379, "TCP"),
        ("web", "kube-dns", 53, "UDP"),
    }


# --- the chart ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "profile", "files"), CASES, ids=[c[0] for c in CASES])
def test_every_connection_of_the_render_is_allowed(case: str, profile: str, files: tuple[Path, ...]) -> None:
    objs = list(objects(profile, files))
    connections = expected_connections(objs)
    assert [str(u) for u in unreachable(objs, connections)] == []
    clients = {c.client for c in connections}
    assert {"dagster-webserver", "dagster-daemon", "dagster-user-code", "dagster-run"} <= clients
    assert all(("kube-dns" in {c.host for c in connections if c.client == client}) for client in clients
               if "@" not in client)  # fmt: skip
    if any(o["kind"] == "Deployment" and o["metadata"]["name"] == "hybridops-inference" for o in objs):
        # What the issue found blocked: the service reads the Feast SQL registry on PostgreSQL.
        assert any(c.client == "inference" and c.port == 5432 for c in connections)


def test_the_policies_are_not_allow_all() -> None:
    """Connections nothing makes stay blocked, so an allow-everything policy would fail this test."""
    objs = list(objects("hybrid"))
    never = [
        Connection("grafana", "hybridops-postgresql", 5432),
        Connection("inference", "hybridops-dagster-user-code", 3030),
        Connection("feast", "hybridops-exporter", 9464),
        Connection("exporter", "hybridops-redis", 6379),
        Connection("dagster-run", "api.example.com", 443),
    ]
    assert [u.connection for u in unreachable(objs, never)] == never


def test_the_inference_to_postgresql_block_is_found() -> None:
    """The chart before its fix: inference missing from PostgreSQL's ingress allow."""
    objs = copy.deepcopy(list(objects("hybrid")))
    (allow,) = [o for o in objs if o["metadata"]["name"] == "hybridops-allow-postgresql"]
    peer = allow["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]
    peer["values"].remove("inference")
    (found,) = unreachable(objs, expected_connections(objs))
    assert (found.connection.client, found.connection.host, found.connection.port) == (
        "inference", "hybridops-postgresql", 5432,
    )  # fmt: skip
    assert "ingress of StatefulSet/hybridops-postgresql port 5432 denied" in found.reason


def test_an_external_prometheus_outside_the_allowed_namespace_is_blocked() -> None:
    # The public ingress narrowed, so MLflow's and the inference service's allow-anyone rule hides nothing.
    narrow = {"networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]}}
    external = [chart.CI_DIR / "external-monitoring-values.yaml"]
    objs = list(chart.manifests(chart.render("hybrid", external, overrides=narrow)))
    scrapes = [c for c in expected_connections(objs) if c.client_namespace == "monitoring"]
    assert {c.host for c in scrapes} >= {"hybridops-exporter", "hybridops-mlflow"}
    assert unreachable(objs, scrapes) == []
    elsewhere = [Connection(c.client, c.host, c.port, client_namespace="default") for c in scrapes]
    assert len(unreachable(objs, elsewhere)) == len(elsewhere)
