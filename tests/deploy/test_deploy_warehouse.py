"""The chart's warehouse: the lakehouse with its catalog on the chart's PostgreSQL, or DuckDB when asked."""

from __future__ import annotations

import re
from typing import Any

import pytest
from deploy_support import EXISTING_SECRETS, containers, find, pod_specs

from hybridops.deploy import chart
from hybridops.settings import DuckDBWarehouse, LakehouseWarehouse, Settings


def _objects(overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return list(chart.manifests(chart.render("hybrid", [EXISTING_SECRETS], overrides=overrides)))


def _env(container: dict[str, Any]) -> list[dict[str, Any]]:
    return container.get("env", [])


def _settings_of(
    objs: list[dict[str, Any]], env: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The Settings a pod builds from the config ConfigMap and its env ($(VAR) expanded as Kubernetes does)."""
    config = find(tuple(objs), "ConfigMap", "hybridops-config")["data"]
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    known = {item["name"]: "pw" if "valueFrom" in item else item["value"] for item in env}
    for item in env:
        if item["name"].startswith("HYBRIDOPS_") and "value" in item:
            monkeypatch.setenv(
                item["name"], re.sub(r"\$\((\w+)\)", lambda m: known[m.group(1)], item["value"])
            )
    return Settings()


def test_the_chart_runs_the_lakehouse_on_its_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    objs = _objects()
    hybridops_pods = ["Deployment/hybridops-dagster-user-code", "Deployment/hybridops-exporter"]
    for name, _, spec in pod_specs(tuple(objs)):
        if name not in hybridops_pods:
            continue
        env = [item for container in containers(spec) for item in _env(container)]
        names = [item["name"] for item in env]
        # The password is defined before the URL that expands it.
        assert names.index("WAREHOUSE_PG_PASSWORD") < names.index("HYBRIDOPS_WAREHOUSE__CATALOG_URL"), name
        secret = next(item for item in env if item["name"] == "WAREHOUSE_PG_PASSWORD")["valueFrom"]
        # The PostgreSQL Secret, the lakehouse role's own key (each component has its role).
        others = [
            i["valueFrom"]["secretKeyRef"] for i in env if i["name"] in ("PG_PASSWORD", "DAGSTER_PG_PASSWORD")
        ]
        assert others and all(secret["secretKeyRef"]["name"] == other["name"] for other in others), name
        assert secret["secretKeyRef"]["key"] == "lakehouse-password", name
        settings = _settings_of(objs, env, monkeypatch)
        assert isinstance(settings.warehouse, LakehouseWarehouse), name
        assert (
            settings.warehouse_catalog_url
            == "postgresql+psycopg2://lakehouse:pw@hybridops-postgresql:5432/lakehouse"
        )
    # Run pods get the same environment (the run launcher's env in dagster.yaml).
    instance = find(tuple(objs), "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"]
    assert "HYBRIDOPS_WAREHOUSE__CATALOG_URL" in instance and "WAREHOUSE_PG_PASSWORD" in instance
    init = find(tuple(objs), "ConfigMap", "hybridops-postgresql")["data"]["create-databases.sh"]
    assert re.search(r"for pair in .* lakehouse:lakehouse; do", init)


def test_backend_duckdb_needs_no_other_value(monkeypatch: pytest.MonkeyPatch) -> None:
    objs = _objects({"hybridops": {"config": {"warehouse": {"backend": "duckdb"}}}})
    for _, _, spec in pod_specs(tuple(objs)):
        for container in containers(spec):
            assert all(
                "WAREHOUSE" not in item["name"]
                for item in _env(container)
                if item["name"] != "HYBRIDOPS_WAREHOUSE"
            )
    user_code = next(
        spec for name, _, spec in pod_specs(tuple(objs)) if name == "Deployment/hybridops-dagster-user-code"
    )
    env = [item for container in containers(user_code) for item in _env(container)]
    assert isinstance(_settings_of(objs, env, monkeypatch).warehouse, DuckDBWarehouse)
    init = find(tuple(objs), "ConfigMap", "hybridops-postgresql")["data"]["create-databases.sh"]
    assert "lakehouse" not in init
