"""Snapshot of the code location's shape: asset keys, groups, owners, checks, jobs, schedules, sensors.

A change to the graph must be deliberate: regenerate with ``HYBRIDOPS_UPDATE_SNAPSHOTS=1 pytest`` and
review the diff of ``snapshots/definitions.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dagster_project import definitions

defs = definitions.defs()

SNAPSHOT = Path(__file__).with_name("snapshots") / "definitions.json"


def _shape() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "owners": sorted(node.owners),
            "partitioned": node.partitions_def is not None,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
            "pools": sorted(node.pools or ()),
        }
    checks = sorted(
        f"{check_key.asset_key.to_user_string()}:{check_key.name}"
        + (" (blocking)" if graph.get_check_spec(check_key).blocking else "")
        for check_key in graph.asset_check_keys
    )
    return {
        "assets": assets,
        "checks": checks,
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")),
        "schedules": sorted(schedule.name for schedule in defs.schedules or ()),
        "sensors": sorted(
            f"{sensor.name} ({sensor.default_status.value.lower()})" for sensor in defs.sensors or ()
        ),
    }


def test_definitions_match_the_snapshot():
    shape = _shape()
    if os.environ.get("HYBRIDOPS_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(shape, indent=2, sort_keys=True) + "\n")
    assert shape == json.loads(SNAPSHOT.read_text())


def test_data_team_owns_dataops_and_features_are_shared():
    shape = _shape()["assets"]
    for name, asset in shape.items():
        if asset["group"] in {"ingest", "quality", "warehouse"}:
            assert asset["owners"] == ["team:data"], name
        if asset["group"] == "features":
            assert asset["owners"] == ["team:data", "team:ml"], name


def test_definitions_load_without_reading_the_environment(monkeypatch):
    # Settings are read when a run starts; a bogus value must not break loading the code location.
    import importlib

    import dagster_project.definitions as module

    monkeypatch.setenv("HYBRIDOPS_QUALITY__MAX_BAD_ROW_RATIO", "not-a-number")
    importlib.reload(module)
