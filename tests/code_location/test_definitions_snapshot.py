"""Snapshot of the code location's shape: asset keys, groups, owners, checks, jobs, schedules, sensors.

A change to the graph must be deliberate: regenerate with ``make snapshots`` (tests/snapshot_files.py) and
review the diff of ``snapshots/definitions.json``.
"""

from __future__ import annotations

from snapshot_files import DEFINITIONS_SNAPSHOT, assert_matches, definitions_shape, definitions_text


def test_definitions_match_the_snapshot():
    assert_matches(DEFINITIONS_SNAPSHOT, definitions_text())


def test_data_team_owns_dataops_and_features_are_shared():
    shape = definitions_shape()["assets"]
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
