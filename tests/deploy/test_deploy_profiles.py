"""The three profiles deploy different releases (field by field), the settings of every rendered hybridops
container validate in server mode, and a store a profile needs without its server fails (settings and
render) with a message naming what to set."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
import yaml
from deploy_support import containers, find, objects, pod_specs
from pydantic import ValidationError

from hybridops.deploy import chart, release_pods
from hybridops.settings import Settings

ML_PARTS = {"mlflow", "feast", "inference", "redis"}
DAGSTER_PARTS = {"dagster-webserver", "dagster-daemon", "dagster-user-code", "postgresql", "exporter"}


def _workloads(profile: str) -> set[str]:
    return {
        o["metadata"]["labels"]["app.kubernetes.io/component"]
        for o in objects(profile)
        if o["kind"] in {"Deployment", "StatefulSet"}
    }


def _container(profile: str, name: str) -> dict[str, Any]:
    for _, _, spec in pod_specs(objects(profile)):
        for container in containers(spec):
            if container["name"] == name:
                return container
    raise KeyError(name)


def container_env(objs: tuple[dict[str, Any], ...], container: dict[str, Any]) -> dict[str, str]:
    """The environment the container starts with: its ConfigMaps, then env (secrets as a placeholder, the
    ``$(VAR)`` references expanded as the kubelet does)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(objs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        value = item.get("value", "secret" if "valueFrom" in item else "")
        env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)
    return env


def test_profiles_deploy_different_workloads() -> None:
    dataops, mlops, hybrid = _workloads("dataops"), _workloads("mlops"), _workloads("hybrid")
    assert dataops >= DAGSTER_PARTS and not ML_PARTS & dataops
    assert mlops >= DAGSTER_PARTS | ML_PARTS
    assert hybrid == mlops  # the same servers; what differs is the code they run and watch
    assert {"prometheus", "grafana", "alertmanager"} <= dataops & mlops & hybrid


@pytest.mark.parametrize(
    ("profile", "module"),
    [
        ("dataops", "dagster_project.definitions_dataops"),
        ("mlops", "dagster_project.definitions_mlops"),
        ("hybrid", "dagster_project.definitions"),
    ],
)
def test_user_code_loads_the_profiles_module(profile: str, module: str) -> None:
    command = _container(profile, "user-code")["command"]
    assert command[command.index("-m") + 1] == module
    objs = objects(profile)
    workspace = yaml.safe_load(
        find(objs, "ConfigMap", "hybridops-dagster-workspace")["data"]["workspace.yaml"]
    )
    (location,) = workspace["load_from"]
    assert location["grpc_server"]["host"] == "hybridops-dagster-user-code"
    config = find(objs, "ConfigMap", "hybridops-config")["data"]
    assert config["HYBRIDOPS_MODE"] == "server" and config["HYBRIDOPS_PROFILE"] == profile


def test_the_module_can_be_overridden() -> None:
    rendered = chart.manifests(
        chart.render(
            "dataops", overrides={"dagster": {"codeLocation": {"module": "my_team.defs", "name": "x"}}}
        )
    )
    (user_code,) = [o for o in rendered if o["metadata"]["name"] == "hybridops-dagster-user-code"
                    and o["kind"] == "Deployment"]  # fmt: skip
    assert "my_team.defs" in user_code["spec"]["template"]["spec"]["containers"][0]["command"]
    with pytest.raises(chart.ChartError, match="codeLocation/module"):
        chart.render("dataops", overrides={"dagster": {"codeLocation": {"module": "not a module"}}})


@pytest.mark.parametrize("profile", ["dataops", "mlops", "hybrid"])
def test_user_code_env_differs_by_profile(profile: str) -> None:
    env = container_env(objects(profile), _container(profile, "user-code"))
    ml = {"HYBRIDOPS_FEAST__REGISTRY", "HYBRIDOPS_MLFLOW__TRACKING_URI", "MLFLOW_TRACKING_URI",
          "HYBRIDOPS_FEAST__ONLINE_STORE__CONNECTION_STRING"}  # fmt: skip
    if profile == "dataops":
        assert not ml & set(env)
        assert yaml.safe_load(env["HYBRIDOPS_MONITORING"])["exporter_sources"] == ["dagster", "warehouse"]
    else:
        assert ml <= set(env)
        assert env["HYBRIDOPS_FEAST__REGISTRY"].startswith("postgresql+psycopg://feast:secret@")
        assert env["HYBRIDOPS_MLFLOW__TRACKING_URI"] == "http://hybridops-mlflow:5000"
    freshness = yaml.safe_load(env["HYBRIDOPS_MONITORING"])["freshness_assets"]
    assert ("flights" in freshness) == (profile != "mlops")


def test_rules_and_dashboards_watch_only_deployed_parts() -> None:
    def alerts(profile: str) -> set[str]:
        data = find(objects(profile), "ConfigMap", "hybridops-prometheus")["data"]
        groups = yaml.safe_load(data["hybridops.yaml"])["groups"]
        return {
            rule["expr"].split("{")[0].split("(")[-1] + ":" + rule["alert"]
            for g in groups
            for rule in g["rules"]
        }

    def dashboards(profile: str) -> set[str]:
        return set(find(objects(profile), "ConfigMap", "hybridops-dashboards")["data"])

    dataops, mlops, hybrid = ({a.split(":")[1] for a in alerts(p)} for p in ("dataops", "mlops", "hybrid"))
    assert "HybridopsSpcRule1Violation" in dataops and "HybridopsSpcRule1Violation" not in mlops
    for ml in ("HybridopsServingErrorRatioHigh", "HybridopsFeatureDrift", "HybridopsFeatureViewStale"):
        assert ml in mlops and ml in hybrid and ml not in dataops, ml
    assert dataops | mlops == hybrid
    assert dashboards("dataops") == {"pipeline-health.json", "data-quality-spc.json"}
    assert dashboards("mlops") == {"pipeline-health.json", "feature-store.json", "model.json", "serving.json"}
    assert dashboards("hybrid") == dashboards("dataops") | dashboards("mlops")
    external = chart.manifests(chart.render("dataops", [chart.CI_DIR / "external-monitoring-values.yaml"]))
    (rule,) = [o for o in external if o["kind"] == "PrometheusRule"]
    assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]} == dataops


@pytest.mark.parametrize("profile", ["dataops", "mlops", "hybrid"])
def test_every_hybridops_container_validates_in_server_mode(
    profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings of the user code, the run pods, the inference service and the exporter, from their
    rendered env (the run pod's from the K8sRunLauncher's config in the instance ConfigMap)."""
    objs = objects(profile)
    specs = [spec for _, _, spec in pod_specs(objs)] + [release_pods.pods(list(objs))["dagster-run"].spec]
    checked = []
    for spec in specs:
        for container in containers(spec):
            env = container_env(objs, container)
            if env.get("HYBRIDOPS_MODE") != "server":
                continue
            for key in [k for k in os.environ if k.startswith("HYBRIDOPS_")]:
                monkeypatch.delenv(key)
            for key, value in env.items():
                if key.startswith("HYBRIDOPS_"):
                    monkeypatch.setenv(key, value)
            settings = Settings()
            assert settings.mode == "server" and settings.profile == profile
            checked.append(container["name"])
    expected = {"user-code", "run", "exporter"} | ({"inference"} if profile != "dataops" else set())
    assert sorted(checked) == sorted(expected)


@pytest.mark.parametrize("profile", ["mlops", "hybrid"])
@pytest.mark.parametrize(
    ("dropped", "named"),
    [
        ("HYBRIDOPS_FEAST__REGISTRY", "feast.registry is unset .* set HYBRIDOPS_FEAST__REGISTRY"),
        (
            "HYBRIDOPS_MLFLOW__TRACKING_URI",
            "mlflow.tracking_uri is unset .* set HYBRIDOPS_MLFLOW__TRACKING_URI",
        ),
    ],
)
def test_server_mode_refuses_a_missing_server_store(
    profile: str, dropped: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = container_env(objects(profile), _container(profile, "user-code"))
    for key, value in env.items():
        if key.startswith("HYBRIDOPS_") and key != dropped:
            monkeypatch.setenv(key, value)
    monkeypatch.delenv(dropped, raising=False)
    with pytest.raises(
        ValidationError, match=f"mode=server \\(HYBRIDOPS_MODE\\) with profile={profile}.*{named}"
    ):
        Settings()


def test_server_mode_rules() -> None:
    Settings(mode="server", profile="dataops")  # needs neither MLflow nor Feast
    Settings()  # local mode: the file defaults under home
    with pytest.raises(ValidationError, match=r"feast\.registry is /data/feast/registry\.db"):
        Settings(mode="server", feast={"registry": "/data/feast/registry.db"})
    with pytest.raises(ValidationError, match=r"mlflow\.tracking_uri is sqlite:///data/mlflow\.db"):
        Settings(mode="server", mlflow={"tracking_uri": "sqlite:///data/mlflow.db"})
    ok = Settings(
        mode="server",
        profile="mlops",
        feast={"registry": "postgresql+psycopg://u:p@db/feast", "online_store": {"type": "redis"}},
        mlflow={"tracking_uri": "http://mlflow:5000"},
    )
    assert ok.mlflow_tracking_uri == "http://mlflow:5000"
    # The lakehouse's catalog is shared by every run pod: in server mode never a SQLite file on the volume.
    with pytest.raises(
        ValidationError, match=r"warehouse\.catalog_url is unset .* HYBRIDOPS_WAREHOUSE__CATALOG_URL"
    ):
        Settings(mode="server", profile="dataops", warehouse={"backend": "lakehouse"})
    with pytest.raises(ValidationError, match=r"warehouse\.catalog_url is sqlite:////data/catalog\.db"):
        Settings(
            mode="server",
            profile="dataops",
            warehouse={"backend": "lakehouse", "catalog_url": "sqlite:////data/catalog.db"},
        )
    lake = Settings(
        mode="server",
        profile="dataops",
        warehouse={"backend": "lakehouse", "catalog_url": "postgresql+psycopg2://u:p@db/lakehouse"},
    )
    assert lake.warehouse_catalog_url == "postgresql+psycopg2://u:p@db/lakehouse"


@pytest.mark.parametrize("profile", ["mlops", "hybrid"])
@pytest.mark.parametrize("component", ["mlflow", "feast"])
def test_an_ml_profile_without_its_server_fails_the_render(profile: str, component: str) -> None:
    overrides: dict[str, Any] = {component: {"enabled": False}, "inference": {"enabled": False}}
    with pytest.raises(
        chart.ChartError, match=f"hybridops.profile={profile} .* needs {component}.enabled=true"
    ):
        chart.render(profile, overrides=overrides)


def test_inference_with_dagster_needs_a_shared_data_volume() -> None:
    with pytest.raises(chart.ChartError, match=r"hybridops\.data\.accessModes to include ReadWriteMany"):
        chart.render("hybrid", overrides={"hybridops": {"data": {"accessModes": ["ReadWriteOnce"]}}})
    assert chart.render("dataops", overrides={"hybridops": {"data": {"accessModes": ["ReadWriteOnce"]}}})
    one_node = {"hybridops": {"data": {"accessModes": ["ReadWriteOnce"], "singleNode": True}}}
    claim = find(
        tuple(chart.manifests(chart.render("hybrid", overrides=one_node))),
        "PersistentVolumeClaim",
        "hybridops-data",
    )
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("profile", ["mlops", "hybrid"])
def test_inference_and_run_pods_share_the_data_volume(profile: str) -> None:
    """The served-feature log (and the model cache) on the volume the skew audit's run pod reads."""
    objs = objects(profile)
    claim = find(objs, "PersistentVolumeClaim", "hybridops-data")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    inference = find(objs, "Deployment", "hybridops-inference")["spec"]["template"]["spec"]
    (container,) = inference["containers"]
    volumes = {v["name"]: v for v in inference["volumes"]}
    (data,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/data"]
    assert volumes[data["name"]]["persistentVolumeClaim"]["claimName"] == "hybridops-data"
    assert not data.get("readOnly")
    assert container_env(objs, container)["HYBRIDOPS_HOME"] == "/data"
    serving = json.loads(find(objs, "ConfigMap", "hybridops-config")["data"]["HYBRIDOPS_SERVING"])
    assert serving["log_max_bytes"] == Settings().serving.log_max_bytes
    instance = yaml.safe_load(find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"])
    run = instance["run_launcher"]["config"]["run_k8s_config"]
    (run_data,) = [v for v in run["pod_spec_config"]["volumes"] if v["name"] == "data"]
    assert run_data["persistentVolumeClaim"]["claimName"] == "hybridops-data"
    assert {"name": "data", "mountPath": "/data"} in run["container_config"]["volumeMounts"]
    run_env = {e["name"]: e.get("value") for e in run["container_config"]["env"]}
    assert run_env["HYBRIDOPS_HOME"] == "/data"  # the skew audit reads <home>/serving/feature_log there
