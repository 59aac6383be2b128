"""Automation on by default; off by the setting, read when the definitions load (not at import)."""

from __future__ import annotations

import dagster as dg
import pytest

from dagster_project import definitions


@pytest.mark.parametrize(("value", "status"), [(None, "RUNNING"), ("false", "STOPPED"), ("true", "RUNNING")])
def test_every_sensor_follows_the_setting(monkeypatch, value, status):
    if value is None:
        monkeypatch.delenv("HYBRIDOPS_ORCHESTRATION__AUTOMATION", raising=False)
    else:
        monkeypatch.setenv("HYBRIDOPS_ORCHESTRATION__AUTOMATION", value)
    defs = definitions.defs()  # loaded now, as the code server loads it: the environment of this moment
    sensors = {sensor.name: sensor.default_status for sensor in defs.sensors or ()}
    assert set(sensors) == {"source_arrivals", "retrain_on_drift_or_spc", "hybridops_automation"}
    assert set(sensors.values()) == {dg.DefaultSensorStatus[status]}
    automation = next(s for s in defs.sensors or () if s.name == "hybridops_automation")
    assert isinstance(automation, dg.AutomationConditionSensorDefinition)
