"""The platform exporter in the chart: its Deployment and Service in every profile, a pod whose settings find
the stores the exporter reads and name only the sources the release deploys (so no scrape drops a source's
series), the bundled Prometheus' scrape jobs (exporter, every inference replica) and the NetworkPolicies that
let the scrapes and the exporter's reads through."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2
import pytest
import typer
import yaml
from deploy_postgres import throwaway_postgres
from deploy_support import CASES, EXISTING_SECRETS, find, objects, render
from tools import require_tool

from hybridops.cli.app import app
from hybridops.deploy import chart
from hybridops.settings import LakehouseWarehouse, Settings
from hybridops.warehouse.db import connect, replace_rows

PROFILES = chart.profiles()
EXTERNAL = chart.CI_DIR / "external-monitoring-values.yaml"
EXPORTER = "hybridops-exporter"
DATAOPS_EXTERNAL = chart.CI_DIR / "external-monitoring-dataops-values.yaml"
# The component each exporter source needs (the warehouse is on the data volume of the Dagster pipeline).
SOURCE_COMPONENT = {"dagster": "dagster", "warehouse": "dagster", "feast": "feast", "mlflow": "mlflow"}


def _render(profile: str = "hybrid", **overrides: Any) -> tuple[dict[str, Any], ...]:
    return tuple(chart.manifests(chart.render(profile, overrides=overrides)))


def _names(objs: tuple[dict[str, Any], ...]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objs}


def _exporter(objs: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(Deployment, pod spec, container) of the exporter."""
    deployment = find(objs, "Deployment", EXPORTER)
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return deployment, spec, container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container["env"]}


def _prometheus_config(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return yaml.safe_load(find(objs, "ConfigMap", "hybridops-prometheus")["data"]["prometheus.yml"])


def _jobs(objs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in _prometheus_config(objs)["scrape_configs"]}


# --- the Deployment and the Service ------------------------------------------------------------------------
@pytest.mark.parametrize("profile", PROFILES)
def test_exporter_deployment_and_service(profile: str) -> None:
    objs = objects(profile)
    deployment, spec, container = _exporter(objs)
    assert deployment["spec"]["replicas"] == 1
    assert spec["automountServiceAccountToken"] is False
    assert container["image"].endswith("/hybridops/platform:0.1.0")
    assert container["command"] == ["sh", "-c"]
    assert container["args"][0].rstrip().endswith("exec hybridops exporter --host 0.0.0.0 --port 9464")
    assert container["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/favicon.ico", "port": "metrics"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "metrics"}
    assert container["envFrom"] == [{"configMapRef": {"name": "hybridops-config"}}]

    service = find(objs, "Service", EXPORTER)
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "exporter"


@pytest.mark.parametrize("profile", PROFILES)
def test_exporter_env_mounts_and_secrets(profile: str) -> None:
    objs = objects(profile)
    _, spec, container = _exporter(objs)
    env = _env(container)
    assert env["HYBRIDOPS_HOME"]["value"] == "/var/lib/hybridops"
    # Dagster (every profile has it): the chart's dagster.yaml, read-only, and its password by secretKeyRef.
    assert env["DAGSTER_HOME"]["value"] == "/opt/dagster/dagster_home"
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "hybridops-postgresql",
        "key": "dagster-password",  # the dagster role's login, not the superuser's
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert (
        volumes[mounts["/opt/dagster/dagster_home"]["name"]]["configMap"]["name"]
        == "hybridops-dagster-instance"
    )
    assert mounts["/opt/dagster/dagster_home"]["readOnly"] is True
    data = volumes[mounts["/data"]["name"]]["persistentVolumeClaim"]
    assert data == {"claimName": "hybridops-data", "readOnly": True} and mounts["/data"]["readOnly"] is True
    assert "emptyDir" in volumes[mounts["/var/lib/hybridops"]["name"]]
    # It reads the Feast registry, never the online store: no Redis password, no Redis address.
    assert not {"REDIS_PASSWORD", "HYBRIDOPS_FEAST__ONLINE_STORE__CONNECTION_STRING"} & set(env)
    mlops = profile != "dataops"
    assert ("HYBRIDOPS_FEAST__REGISTRY" in env) is mlops
    assert ("HYBRIDOPS_MLFLOW__TRACKING_URI" in env) is mlops
    if mlops:
        # The monitoring login (read-only), never the admin: the exporter reads the champion through
        # get-registered-model, which tells a reader "not found" for a model not registered yet
        # (test_deploy_runtime.py::test_the_monitor_login_reads_and_writes_nothing).
        assert env["MLFLOW_TRACKING_USERNAME"]["value"] == "monitor"
        assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "hybridops-mlflow-auth",
            "key": "monitor-password",
        }
        assert env["HYBRIDOPS_MLFLOW__MODEL_NAME"]["value"] == "flight_delay"
        assert env["HYBRIDOPS_FEAST__REGISTRY"]["value"].startswith(
            "postgresql+psycopg://feast:$(PG_PASSWORD)@"  # the feast role, not the superuser
        )


@pytest.mark.parametrize("profile", PROFILES)
def test_exporter_rolls_when_its_config_changes(profile: str) -> None:
    """Each checksum annotation is the hash of the rendered object it names (what the pod reads); generated
    Secrets are hashed too (their values differ per render, so only their presence is compared)."""
    deployment, _, _ = _exporter(objects(profile))
    generated = {"checksum/postgresql-secret"} | ({"checksum/mlflow-auth"} if profile != "dataops" else set())
    config = {
        "checksum/hybridops-config": "configmap-hybridops.yaml",
        "checksum/dagster-instance": "configmap-dagster-instance.yaml",
    }
    assert set(deployment["spec"]["template"]["metadata"]["annotations"]) == generated | set(config)
    rendered = render(profile, (EXISTING_SECRETS,))
    deployment, _, _ = _exporter(objects(profile, (EXISTING_SECRETS,)))
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == set(config)
    for key, template in config.items():
        text = rendered[f"hybridops/templates/{template}"]
        assert annotations[key] == hashlib.sha256(text.encode()).hexdigest(), key


@pytest.mark.parametrize(
    "overrides",
    [{"exporter": {"enabled": False}}, {"monitoring": {"enabled": False}}],
    ids=["exporter-off", "monitoring-off"],
)
def test_exporter_is_switchable(overrides: dict[str, Any]) -> None:
    objs = _render(**overrides)
    assert not {name for name in _names(objs) if name[1] == EXPORTER}
    assert not any("exporter" in o["metadata"]["name"] for o in objs)
    if overrides.get("monitoring") is None:
        assert "hybridops-exporter" not in _jobs(objs)


def test_exporter_cli_accepts_the_charts_arguments() -> None:
    """The container's arguments parse with the real CLI (an option renamed there fails here)."""
    _, _, container = _exporter(objects("hybrid"))
    argv = container["args"][0].split("exec hybridops ", 1)[1].split()
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    command = group.get_command(group.make_context("hybridops", list(argv)), argv[0])
    assert command is not None
    params = command.make_context(argv[0], argv[1:]).params
    assert params == {"host": "0.0.0.0", "port": container["ports"][0]["containerPort"]}


# --- the pod finds the stores --------------------------------------------------------------------------------
def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of an env value (earlier variables only)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _secret(name: str, key: str) -> str:
    return f"pw-{name}-{key}"


def _env_refs(node: Any) -> set[str]:
    """Variables a dagster.yaml reads from the environment (``{env: NAME}``)."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(_env_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_refs(v) for v in node))
    return set()


@pytest.mark.parametrize("profile", PROFILES)
def test_the_exporter_pod_finds_every_store(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with contextlib.ExitStack() as stack:
        _exporter_pod_finds_every_store(profile, tmp_path, monkeypatch, stack)


def _exporter_pod_finds_every_store(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: contextlib.ExitStack
) -> None:
    """Lay out the pod's volumes in a folder, run the container's start script (with `hybridops` replaced by
    a recorder), then build the exporter's Settings from the container's environment: they must point at the
    mounted dagster.yaml, the warehouse on the data volume, the Feast SQL registry of feature_store.yaml and
    the MLflow Service, and the exporter's warehouse reader must read the file through them."""
    from hybridops.observability.exporter_warehouse import warehouse_metrics

    objs = objects(profile)
    _, spec, container = _exporter(objs)
    volumes = {v["name"]: v for v in spec["volumes"]}
    local: dict[str, Path] = {}  # mountPath -> folder standing in for the volume
    for mount in container["volumeMounts"]:
        folder = tmp_path / "volumes" / mount["name"]
        folder.mkdir(parents=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            for key, text in find(objs, "ConfigMap", volume["configMap"]["name"])["data"].items():
                (folder / key).write_text(text)
        local[mount["mountPath"]] = folder

    env: dict[str, str] = {}
    for source in container["envFrom"]:
        env.update(find(objs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = _secret(ref["name"], ref["key"])
        else:
            env[item["name"]] = str(local.get(item["value"], _expand(item["value"], env)))

    recorder = tmp_path / "bin" / "hybridops"
    recorder.parent.mkdir()
    recorder.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "argv"}\n')
    recorder.chmod(0o755)
    started = subprocess.run(
        ["sh", "-c", container["args"][0]],
        env={**env, "PATH": f"{recorder.parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert started.returncode == 0, started.stderr
    assert (tmp_path / "argv").read_text().split() == ["exporter", "--host", "0.0.0.0", "--port", "9464"]

    # The chart keeps the warehouse in the lakehouse, its Iceberg catalog in the release's PostgreSQL: a real
    # server stands in for the Service (host:port -> a loopback port, as in the chart runtime test).
    catalog = env["HYBRIDOPS_WAREHOUSE__CATALOG_URL"]
    service = "@hybridops-postgresql:5432/"
    assert service in catalog and catalog.endswith("/lakehouse")
    user, password = catalog.split("://", 1)[1].split("@", 1)[0].split(":", 1)
    assert user == "lakehouse"  # the lakehouse role of the chart's PostgreSQL, not the superuser
    postgres = stack.enter_context(throwaway_postgres(user, password))
    admin = psycopg2.connect(postgres)
    try:
        admin.autocommit = True  # CREATE DATABASE runs outside a transaction
        admin.cursor().execute("create database lakehouse")
    finally:
        admin.close()
    env["HYBRIDOPS_WAREHOUSE__CATALOG_URL"] = catalog.replace(
        service, f"@{postgres.split('@', 1)[1].split('/')[0]}/"
    )

    for key in [k for k in os.environ if k.startswith(("HYBRIDOPS_", "MLFLOW_", "DAGSTER_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert isinstance(settings.warehouse, LakehouseWarehouse)
    assert Path(settings.warehouse_location).resolve() == local["/data"] / "warehouse" / "iceberg"
    # What the pipeline writes (the quarantine), through the backend the run pods use.
    with connect(settings) as con:
        replace_rows(
            con,
            "quarantine",
            pd.DataFrame({"table_name": ["flights"] * 2, "check_name": ["dep_delay_range"] * 2}),
        )

    instance = find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"]
    assert (settings.dagster_home / "dagster.yaml").read_text() == instance
    assert _env_refs(yaml.safe_load(instance)) <= set(env)
    values = yaml.safe_load((chart.CHART_DIR / "values.yaml").read_text())
    profile_monitoring = (
        chart.user_values(profile).get("hybridops", {}).get("config", {}).get("monitoring", {})
    )
    assert settings.monitoring.model_dump(mode="json") == {
        **values["hybridops"]["config"]["monitoring"],
        **profile_monitoring,
    }
    # The exporter reads only what the profile deploys: DataOps has no Feast and no MLflow.
    if profile == "dataops":
        assert settings.monitoring.exporter_sources == ["dagster", "warehouse"]
    else:
        assert settings.monitoring.exporter_sources == ["dagster", "warehouse", "feast", "mlflow"]
    quarantined = {
        tuple(sample.labels.values()): sample.value
        for family in warehouse_metrics(settings)
        if family.name == "hybridops_quality_quarantined_rows"
        for sample in family.samples
    }
    assert quarantined == {("flights", "dep_delay_range"): 2.0}

    if profile == "dataops":
        assert settings.feast.registry is None and settings.mlflow.tracking_uri is None
        return
    store = yaml.safe_load(find(objs, "Secret", "hybridops-feast")["stringData"]["feature_store.yaml"])
    feast = find(objs, "Deployment", "hybridops-feast")["spec"]["template"]["spec"]["containers"][0]
    feast_pg = _env(feast)["FEAST_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]
    registry = store["registry"]["path"].replace(
        "${FEAST_PG_PASSWORD}", _secret(feast_pg["name"], feast_pg["key"])
    )
    assert settings.feast.registry == registry  # the registry the feature server serves
    assert settings.feast.project == store["project"]
    mlflow = find(objs, "Service", "hybridops-mlflow")
    assert (
        settings.mlflow_tracking_uri
        == f"http://{mlflow['metadata']['name']}:{mlflow['spec']['ports'][0]['port']}"
    )
    (mlflow,) = [
        c
        for c in find(objs, "Deployment", "hybridops-mlflow")["spec"]["template"]["spec"]["containers"]
        if c["name"] == "mlflow"
    ]
    server = _env(mlflow)
    # The login the MLflow pod creates for the monitoring, with the password it sets.
    assert env["MLFLOW_TRACKING_USERNAME"] == server["MLFLOW_MONITOR_USERNAME"]["value"]
    assert (
        _env(container)["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]
        == server["MLFLOW_MONITOR_PASSWORD"]["valueFrom"]
    )
    # The names the pods read are those the trainer's grants cover.
    assert settings.mlflow.experiment == server["MLFLOW_TRAINER_EXPERIMENT"]["value"]
    assert settings.mlflow.model_name == json.loads(server["MLFLOW_TRAINER_MODELS"]["value"])[0]


# --- what the bundled Prometheus scrapes ---------------------------------------------------------------------
@pytest.mark.parametrize("profile", PROFILES)
def test_bundled_prometheus_scrapes_the_exporter(profile: str) -> None:
    objs = objects(profile)
    job = _jobs(objs)["hybridops-exporter"]
    service = find(objs, "Service", EXPORTER)
    assert job["static_configs"] == [{"targets": [f"{EXPORTER}:{service['spec']['ports'][0]['port']}"]}]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # Nothing dropped at scrape time: the exporter exports no series of a source the profile lacks.
    assert "metric_relabel_configs" not in job and "relabel_configs" not in job


def _exporter_sources(objs: tuple[dict[str, Any], ...]) -> list[str]:
    """monitoring.exporter_sources as the exporter pod reads it (the config ConfigMap it takes its env from)."""
    _, _, container = _exporter(objs)
    (source,) = container["envFrom"]
    data = find(objs, "ConfigMap", source["configMapRef"]["name"])["data"]
    return list(json.loads(data["HYBRIDOPS_MONITORING"])["exporter_sources"])


@pytest.mark.parametrize(("case", "profile", "files"), CASES, ids=[c[0] for c in CASES])
def test_the_exporter_reads_exactly_what_the_release_deploys(
    case: str, profile: str, files: tuple[Path, ...]
) -> None:
    """Every source of every component the release deploys, and nothing else: so neither the bundled
    Prometheus nor an external one drops hybridops_exporter_source_* series (no relabeling anywhere), and
    HybridopsExporterSourceDown cannot fire for a store the release does not have."""
    objs = objects(profile, files)
    values = chart.user_values(profile, files)
    deployed = {
        source
        for source, component in SOURCE_COMPONENT.items()
        if values.get(component, {}).get("enabled", True)
    }
    sources = _exporter_sources(objs)
    assert set(sources) == deployed and len(sources) == len(deployed), case
    if any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == "hybridops-prometheus" for o in objs):
        for job in _prometheus_config(objs)["scrape_configs"]:
            assert "metric_relabel_configs" not in job, (case, job["job_name"])
    for monitor in (o for o in objs if o["kind"] == "ServiceMonitor"):
        for endpoint in monitor["spec"]["endpoints"]:
            assert "metricRelabelings" not in endpoint, (case, monitor["metadata"]["name"])


def test_the_dataops_exporter_gets_its_sources_through_the_config_configmap() -> None:
    objs = objects("dataops")
    config = find(objs, "ConfigMap", "hybridops-config")["data"]
    assert json.loads(config["HYBRIDOPS_MONITORING"])["exporter_sources"] == ["dagster", "warehouse"]
    _, _, container = _exporter(objs)
    assert container["envFrom"] == [{"configMapRef": {"name": "hybridops-config"}}]
    # No other variable of the pod overrides the section (HYBRIDOPS_MONITORING__*).
    assert not [e["name"] for e in container["env"] if e["name"].startswith("HYBRIDOPS_MONITORING")]
    # A change of the sources rolls the exporter: the ConfigMap is what checksum/hybridops-config hashes
    # (test_exporter_rolls_when_its_config_changes).


@pytest.mark.parametrize("profile", ["mlops", "hybrid"])
def test_bundled_prometheus_scrapes_every_inference_replica(profile: str) -> None:
    """Through a headless Service's DNS records (one target per ready pod), not the load-balanced Service
    (which would answer each scrape from another replica and interleave their counters)."""
    objs = objects(profile)
    job = _jobs(objs)["hybridops-inference"]
    assert "static_configs" not in job
    (sd,) = job["dns_sd_configs"]
    (name,) = sd["names"]
    headless = find(objs, "Service", name)
    assert headless["spec"]["clusterIP"] == "None"
    pods = find(objs, "Deployment", "hybridops-inference")["spec"]["template"]
    assert headless["spec"]["selector"].items() <= pods["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in pods["spec"]["containers"][0]["ports"]}
    assert sd["type"] == "A" and sd["port"] == ports["http"]
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_external_mode_has_no_headless_service_and_monitors_the_exporter() -> None:
    objs = objects("hybrid", (EXTERNAL,))
    assert ("Service", "hybridops-inference-pods") not in _names(objs)
    monitor = find(objs, "ServiceMonitor", EXPORTER)
    assert monitor["spec"]["selector"]["matchLabels"] == find(objs, "Service", EXPORTER)["spec"]["selector"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
    assert "metricRelabelings" not in endpoint
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # DataOps watched by an existing stack: the exporter reads Dagster and the warehouse only, so its
    # ServiceMonitor keeps every series (no drop of MLflow's and Feast's source-up series any more).
    dataops = objects("hybrid", (DATAOPS_EXTERNAL,))
    (endpoint,) = find(dataops, "ServiceMonitor", EXPORTER)["spec"]["endpoints"]
    assert "metricRelabelings" not in endpoint
    assert _exporter_sources(dataops) == ["dagster", "warehouse"]


@pytest.mark.parametrize("profile", PROFILES)
def test_bundled_prometheus_config_passes_promtool(profile: str, tmp_path: Path) -> None:
    """The rendered prometheus.yml with the rule files of the same ConfigMap, as the pod mounts them."""
    data = find(objects(profile), "ConfigMap", "hybridops-prometheus")["data"]
    (tmp_path / "rules").mkdir()
    for key, text in data.items():
        if key != "prometheus.yml":
            (tmp_path / "rules" / key).write_text(text)
    config = yaml.safe_load(data["prometheus.yml"])
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yaml"]
    config["rule_files"] = [str(tmp_path / "rules" / "*.yaml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [require_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


# --- NetworkPolicies ----------------------------------------------------------------------------------------
def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        value, values = labels.get(expression["key"]), expression.get("values", [])
        ok = {
            "In": value in values,
            "NotIn": value not in values,
            "Exists": expression["key"] in labels,
            "DoesNotExist": expression["key"] not in labels,
        }[expression["operator"]]
        if not ok:
            return False
    return True


def _pod(objs: tuple[dict[str, Any], ...], component: str) -> tuple[dict[str, str], dict[str, int]]:
    """Labels and named container ports of a component's pods."""
    for obj in objs:
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            template = obj["spec"]["template"]
            if template["metadata"]["labels"]["app.kubernetes.io/component"] == component:
                ports = {
                    p["name"]: p["containerPort"]
                    for c in template["spec"]["containers"]
                    for p in c.get("ports", [])
                }
                return template["metadata"]["labels"], ports
    raise KeyError(component)


def _peer_matches(peer: dict[str, Any], labels: dict[str, str], namespace: dict[str, str]) -> bool:
    """A NetworkPolicyPeer against a pod (its labels, its namespace's labels; the release's is 'hybridops')."""
    in_release = namespace.get("kubernetes.io/metadata.name") == "hybridops"
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer and not _selects(peer["namespaceSelector"], namespace):
        return False
    if "namespaceSelector" not in peer and not in_release:
        return False
    return "podSelector" not in peer or _selects(peer["podSelector"], labels)


def _port_matches(rule: dict[str, Any], port: str, ports: dict[str, int]) -> bool:
    return "ports" not in rule or any(p["port"] in (port, ports.get(port)) for p in rule["ports"])


RELEASE_NS = {"kubernetes.io/metadata.name": "hybridops"}


def ingress_allowed(
    objs: tuple[dict[str, Any], ...],
    source: dict[str, str],
    target: str,
    port: str,
    namespace: dict[str, str] = RELEASE_NS,
) -> bool:
    """Whether the release's policies let a pod with labels ``source`` open ``target``'s named ``port``."""
    labels, ports = _pod(objs, target)
    policies = [
        p["spec"]
        for p in objs
        if p["kind"] == "NetworkPolicy"
        and "Ingress" in p["spec"]["policyTypes"]
        and _selects(p["spec"]["podSelector"], labels)
    ]
    return any(
        _port_matches(rule, port, ports)
        and ("from" not in rule or any(_peer_matches(peer, source, namespace) for peer in rule["from"]))
        for policy in policies
        for rule in policy.get("ingress", [])
    )


def egress_allowed(objs: tuple[dict[str, Any], ...], source: str, target: str, port: str) -> bool:
    labels, _ = _pod(objs, source)
    target_labels, ports = _pod(objs, target)
    policies = [
        p["spec"]
        for p in objs
        if p["kind"] == "NetworkPolicy"
        and "Egress" in p["spec"]["policyTypes"]
        and _selects(p["spec"]["podSelector"], labels)
    ]
    return any(
        _port_matches(rule, port, ports)
        and ("to" not in rule or any(_peer_matches(peer, target_labels, RELEASE_NS) for peer in rule["to"]))
        for policy in policies
        for rule in policy.get("egress", [])
    )


NARROW_INGRESS = {
    "networkPolicy": {
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}]
    }
}


def test_network_policies_let_the_exporter_read_and_prometheus_scrape() -> None:
    """With the public ingress narrowed (so no allow-anyone rule hides a missing allow)."""
    objs = _render(**NARROW_INGRESS)
    exporter, _ = _pod(objs, "exporter")
    prometheus, _ = _pod(objs, "prometheus")
    grafana, _ = _pod(objs, "grafana")
    for target, port in [("postgresql", "postgresql"), ("mlflow", "http")]:
        assert egress_allowed(objs, "exporter", target, port), target
        assert ingress_allowed(objs, exporter, target, port), target
    assert not ingress_allowed(objs, exporter, "redis", "redis")  # it never opens the online store
    for target, port in [
        ("exporter", "metrics"),
        ("inference", "http"),
        ("alertmanager", "http"),
        ("mlflow", "metrics"),  # the MLflow pod's login-free metrics sidecar, not MLflow's own port
    ]:
        assert egress_allowed(objs, "prometheus", target, port), target
        assert ingress_allowed(objs, prometheus, target, port), target
        assert not ingress_allowed(objs, grafana, target, port), target  # the allows are not allow-all
    # Prometheus no longer talks to MLflow itself, and the release's other MLflow clients not to the sidecar.
    assert not ingress_allowed(objs, prometheus, "mlflow", "http")
    assert not ingress_allowed(objs, exporter, "mlflow", "metrics")
    ingress = {"kubernetes.io/metadata.name": "ingress"}
    assert ingress_allowed(objs, {}, "inference", "http", ingress)
    assert not ingress_allowed(objs, {}, "exporter", "metrics", ingress)


def test_network_policies_in_external_mode_let_the_stacks_prometheus_scrape_the_exporter() -> None:
    # The public ingress narrowed, so MLflow's allow-anyone rule does not hide a missing scrape allow.
    objs = tuple(chart.manifests(chart.render("hybrid", [EXTERNAL], overrides=NARROW_INGRESS)))
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    elsewhere = {"kubernetes.io/metadata.name": "default"}
    for target, port in [("exporter", "metrics"), ("mlflow", "metrics")]:
        assert ingress_allowed(objs, {"app": "prometheus"}, target, port, monitoring), target
        assert not ingress_allowed(objs, {"app": "prometheus"}, target, port, elsewhere), target


def test_dataops_exporter_reaches_postgres_without_mlflow_or_feast() -> None:
    objs = objects("dataops")
    exporter, _ = _pod(objs, "exporter")
    assert ingress_allowed(objs, exporter, "postgresql", "postgresql")
    assert {"mlflow", "feast", "inference", "redis"}.isdisjoint(
        o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for o in objs
        if o["kind"] == "Deployment"
    )
