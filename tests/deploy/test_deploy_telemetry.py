"""Usage telemetry is off in every container of the platform's images (MLflow server and clients,
Dagster, Feast, hybridops, the run pods) and in Dagster's instance, and ``hybridops.telemetry: true`` turns
it back on."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_support import CASES, containers, find, objects, pod_specs

from hybridops.deploy import chart
from hybridops.telemetry import TELEMETRY_OFF, TELEMETRY_SETTING_ENV

OWN_IMAGES = ("/hybridops/platform:", "/hybridops/inference:")


def _instance(objs: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    if ("ConfigMap", "hybridops-dagster-instance") not in names:
        return None
    return yaml.safe_load(find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"])


def _own_containers(objs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, str]]]:
    """(workload/container, env) of every container (init ones too) running one of the platform's images,
    plus the run pods' env from the Dagster instance's K8sRunLauncher."""
    found = []
    for name, _, spec in pod_specs(objs):
        for c in containers(spec):
            if any(image in c["image"] for image in OWN_IMAGES):
                found.append((f"{name}/{c['name']}", {e["name"]: e.get("value") for e in c.get("env", [])}))
    if (instance := _instance(objs)) is not None:
        container = instance["run_launcher"]["config"]["run_k8s_config"]["container_config"]
        found.append(("run pods", {e["name"]: e.get("value") for e in container["env"]}))
    return found


@pytest.mark.parametrize(("case_id", "profile", "values_files"), CASES, ids=[c[0] for c in CASES])
def test_telemetry_is_off_in_every_own_container(case_id: str, profile: str, values_files: tuple) -> None:
    objs = objects(profile, values_files)
    found = _own_containers(objs)
    assert len(found) >= 3, found
    for where, env in found:
        for key, value in TELEMETRY_OFF.items():
            assert env.get(key) == value, (where, key, env.get(key))
        assert TELEMETRY_SETTING_ENV not in env, where
    if (instance := _instance(objs)) is not None:
        assert instance["telemetry"] == {"enabled": False}


@pytest.mark.parametrize("profile", chart.profiles())
def test_the_value_turns_telemetry_back_on(profile: str) -> None:
    objs = tuple(chart.manifests(chart.render(profile, overrides={"hybridops": {"telemetry": True}})))
    found = _own_containers(objs)
    assert found
    for where, env in found:
        assert not set(TELEMETRY_OFF) & set(env), where
        assert env.get(TELEMETRY_SETTING_ENV) == "true", where
    if (instance := _instance(objs)) is not None:
        assert instance["telemetry"] == {"enabled": True}
