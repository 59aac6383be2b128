"""The chart's automation, executor and pool values, rendered by the real Helm engine, field by field.

The code location reads ``HYBRIDOPS_ORCHESTRATION__*`` from the release's config ConfigMap when its
definitions load (user code server and run pods); the Dagster instance's ``dagster.yaml`` carries the run
and pool limits, and is accepted by Dagster's own instance-config validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import find

from hybridops.deploy import chart
from hybridops.settings import Settings

RELEASE = chart.DEFAULT_RELEASE


def _render(tmp_path: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    files = []
    if values:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        files.append(path)
    return chart.manifests(chart.render("hybrid", files))


def _config(objs: list[dict[str, Any]]) -> dict[str, str]:
    return find(tuple(objs), "ConfigMap", f"{RELEASE}-config")["data"]


def _instance(objs: list[dict[str, Any]]) -> dict[str, Any]:
    text = find(tuple(objs), "ConfigMap", f"{RELEASE}-dagster-instance")["data"]["dagster.yaml"]
    return yaml.safe_load(text)


def _settings_from(config: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a pod gets from the ConfigMap's environment.

    The store URLs come from each pod's own env (Secrets), not the ConfigMap: server-mode settings refuse
    to load without them, so they are given here as the pods get them.
    """
    monkeypatch.setenv("HYBRIDOPS_FEAST__REGISTRY", "postgresql+psycopg://feast:pw@postgresql:5432/feast")
    monkeypatch.setenv("HYBRIDOPS_MLFLOW__TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv(
        "HYBRIDOPS_WAREHOUSE__CATALOG_URL", "postgresql+psycopg2://hybridops:pw@postgresql:5432/lakehouse"
    )
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_defaults_turn_automation_on_with_the_multiprocess_executor(tmp_path, monkeypatch):
    objs = _render(tmp_path)
    config = _config(objs)
    assert config["HYBRIDOPS_ORCHESTRATION__AUTOMATION"] == "true"
    assert config["HYBRIDOPS_ORCHESTRATION__SENSOR_INTERVAL_SECONDS"] == "30"
    assert config["HYBRIDOPS_ORCHESTRATION__EXECUTOR"] == "multiprocess"
    orchestration = _settings_from(config, monkeypatch).orchestration
    assert orchestration.automation is True and orchestration.executor == "multiprocess"

    instance = _instance(objs)
    assert instance["run_coordinator"] == {
        "module": "dagster.core.run_coordinator",
        "class": "QueuedRunCoordinator",
    }
    assert instance["concurrency"] == {"runs": {"max_concurrent_runs": 4}, "pools": {"default_limit": 1}}
    assert instance["run_launcher"]["class"] == "K8sRunLauncher"
    assert instance["run_monitoring"]["enabled"] is True
    # A dead run pod's pool slot is freed; only runs whose pod died are retried whole (issue 14, scenario 1).
    assert instance["run_monitoring"]["free_slots_after_run_end_seconds"] == 30
    assert instance["run_retries"] == {
        "enabled": True,
        "max_retries": 1,
        "retry_on_asset_or_op_failure": False,
    }


def test_values_switch_automation_off_pick_the_k8s_executor_and_set_the_limits(tmp_path, monkeypatch):
    objs = _render(
        tmp_path,
        {
            "dagster": {
                "automation": {"enabled": False, "sensorIntervalSeconds": 60},
                "executor": "k8s",
                "pools": {"defaultLimit": 2},
                "daemon": {"maxConcurrentRuns": 8},
            }
        },
    )
    config = _config(objs)
    assert config["HYBRIDOPS_ORCHESTRATION__AUTOMATION"] == "false"
    assert config["HYBRIDOPS_ORCHESTRATION__SENSOR_INTERVAL_SECONDS"] == "60"
    assert config["HYBRIDOPS_ORCHESTRATION__EXECUTOR"] == "k8s"
    orchestration = _settings_from(config, monkeypatch).orchestration
    assert (orchestration.automation, orchestration.sensor_interval_seconds, orchestration.executor) == (
        False,
        60,
        "k8s",
    )
    assert _instance(objs)["concurrency"] == {
        "runs": {"max_concurrent_runs": 8},
        "pools": {"default_limit": 2},
    }


def test_an_unknown_executor_is_refused_by_the_schema(tmp_path):
    with pytest.raises(chart.ChartError, match="executor"):
        _render(tmp_path, {"dagster": {"executor": "celery"}})


def test_dagster_accepts_the_rendered_instance_config(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = _instance(_render(tmp_path))
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    config, _ = dagster_instance_config(str(home))
    assert config["concurrency"]["pools"]["default_limit"] == 1


def _user_code_env(objs: list[dict[str, Any]]) -> dict[str, str]:
    deployment = find(tuple(objs), "Deployment", f"{RELEASE}-dagster-user-code")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value", "") for item in container["env"]}


def _run_pod_env(objs: list[dict[str, Any]]) -> dict[str, str]:
    container = _instance(objs)["run_launcher"]["config"]["run_k8s_config"]["container_config"]
    return {item["name"]: item.get("value", "") for item in container["env"]}


def test_the_source_folder_reaches_the_user_code_server_and_the_run_pods_only_when_set(tmp_path):
    objs = _render(tmp_path)
    assert "HYBRIDOPS_SOURCE_DIR" not in _user_code_env(objs)
    assert "HYBRIDOPS_SOURCE_DIR" not in _run_pod_env(objs)
    assert "HYBRIDOPS_SOURCE_DIR" not in _config(objs)

    objs = _render(tmp_path, {"hybridops": {"sourceDir": "/data/source"}})
    assert _user_code_env(objs)["HYBRIDOPS_SOURCE_DIR"] == "/data/source"
    assert _run_pod_env(objs)["HYBRIDOPS_SOURCE_DIR"] == "/data/source"


def test_a_relative_source_folder_is_refused_by_the_schema(tmp_path):
    with pytest.raises(chart.ChartError, match="sourceDir"):
        _render(tmp_path, {"hybridops": {"sourceDir": "source"}})


def test_the_cadences_are_values_that_reach_the_settings(tmp_path, monkeypatch):
    defaults = _settings_from(_config(_render(tmp_path)), monkeypatch).orchestration
    assert (defaults.training_cron, defaults.skew_audit_cron) == ("0 4 1 * *", "0 * * * *")

    objs = _render(
        tmp_path,
        {
            "hybridops": {
                "config": {"orchestration": {"skew_audit_cron": "*/5 * * * *", "training_cron": "0 5 * * 1"}}
            },
            "dagster": {"automation": {"sensorIntervalSeconds": 45}},
        },
    )
    orchestration = _settings_from(_config(objs), monkeypatch).orchestration
    assert orchestration.skew_audit_cron == "*/5 * * * *"
    assert orchestration.training_cron == "0 5 * * 1"
    # The Dagster values still set the rest of the section beside the cadences.
    assert orchestration.sensor_interval_seconds == 45 and orchestration.automation is True
