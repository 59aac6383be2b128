"""The Dagster daemon's liveness: a tolerance from chart values (not Dagster's 1800 s), probed with
``dagster-daemon liveness-check``; the exporter's absent() alert only where an exporter is deployed.

The live half (a real daemon stopped, the probe failing, the heartbeat alert firing) is
tests/observability/test_observability_daemon.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from hybridops.deploy import chart

DAEMON = "hybridops-dagster-daemon"


def _daemon_container(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    objects = chart.manifests(chart.render("hybrid", overrides=overrides))
    [daemon] = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == DAEMON]
    [container] = daemon["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container["env"]}


def test_the_daemon_probe_uses_the_tolerance_of_the_values() -> None:
    container = _daemon_container()
    assert container["command"][:2] == ["dagster-daemon", "run"]
    # Read by `dagster-daemon liveness-check` (the probe runs in the container's environment) and by the
    # daemon's own watchdog; well below Dagster's 1800 s default.
    assert _env(container)["DAGSTER_DAEMON_HEARTBEAT_TOLERANCE"] == "300"
    probe = container["livenessProbe"]
    assert probe["exec"]["command"] == ["dagster-daemon", "liveness-check"]
    assert probe["periodSeconds"] == 60
    assert probe["failureThreshold"] == 3
    assert probe["timeoutSeconds"] == 30
    assert probe["initialDelaySeconds"] == 240

    changed = _daemon_container({"dagster": {"daemon": {"heartbeatToleranceSeconds": 120}}})
    assert _env(changed)["DAGSTER_DAEMON_HEARTBEAT_TOLERANCE"] == "120"
    assert changed["livenessProbe"] == probe


@pytest.mark.parametrize("tolerance", [10, 3600])
def test_the_tolerance_is_bounded(tolerance: int) -> None:
    with pytest.raises(chart.ChartError, match="heartbeatToleranceSeconds"):
        chart.render("hybrid", overrides={"dagster": {"daemon": {"heartbeatToleranceSeconds": tolerance}}})


def _alerts(overrides: dict[str, Any]) -> set[str]:
    objects = chart.manifests(
        chart.render("hybrid", overrides={"monitoring": {"mode": "external"}, **overrides})
    )
    return {
        rule["alert"]
        for o in objects
        if o["kind"] == "PrometheusRule"
        for group in o["spec"]["groups"]
        for rule in group["rules"]
    }


def test_the_exporter_alerts_ship_only_with_the_exporter() -> None:
    with_exporter = _alerts({})
    assert {
        "HybridopsExporterAbsent",
        "HybridopsDaemonHeartbeatStale",
        "HybridopsSourceStale",
    } <= with_exporter
    without = _alerts({"exporter": {"enabled": False}})
    # Without an exporter its absent() alert would fire forever.
    assert "HybridopsExporterAbsent" not in without
    assert "HybridopsExporterSourceDown" not in without
    assert "HybridopsServingDegradedRatioHigh" in with_exporter
