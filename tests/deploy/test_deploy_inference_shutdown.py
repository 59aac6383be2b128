"""The inference Deployment's shutdown budget (scenario 20 of docs/reliability.md): a preStop sleep, then the
service's own drain and in-flight requests, all inside terminationGracePeriodSeconds, from the values."""

from __future__ import annotations

from pathlib import Path

import yaml
from deploy_support import find, objects

from hybridops.deploy.values import ChartValues
from hybridops.settings import ServingSettings


def _inference_pod(values_files: tuple[Path, ...] = ()) -> dict:
    deployment = find(objects("hybrid", values_files), "Deployment", "hybridops-inference")
    return deployment["spec"]["template"]["spec"]


def test_default_grace_period_covers_prestop_drain_and_in_flight_requests() -> None:
    pod = _inference_pod()
    (container,) = [c for c in pod["containers"] if c["name"] == "inference"]
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    serving = ServingSettings()
    assert sleep == ChartValues().inference.pre_stop_sleep_seconds > 0
    assert pod["terminationGracePeriodSeconds"] >= (
        sleep + serving.drain_seconds + serving.shutdown_timeout_seconds
    )


def test_grace_period_follows_the_values(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "inference": {"preStopSleepSeconds": 0},
                "hybridops": {"config": {"serving": {"drain_seconds": 12.5, "shutdown_timeout_seconds": 30}}},
            }
        )
    )
    pod = _inference_pod((values,))
    (container,) = [c for c in pod["containers"] if c["name"] == "inference"]
    assert "lifecycle" not in container
    assert pod["terminationGracePeriodSeconds"] == 0 + 13 + 30 + 5
