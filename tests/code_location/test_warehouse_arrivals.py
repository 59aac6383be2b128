"""The mlops location's warehouse sensor: months another release writes become partitions and updates.

A small hand-made warehouse (``warehouse_builders``): the first look adds its months and records one
materialization per month of ``fct_flights`` and ``weather`` and one of ``planes``; an unchanged warehouse
records nothing; a month rewritten with other rows is recorded again, alone.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from warehouse_builders import fct_row, load_tables, planes_frame, weather_frame

from dagster_project.build import build_definitions
from dagster_project.partitions import MONTHS
from dagster_project.resources import HybridopsResource
from hybridops.settings import OrchestrationSettings, Settings


def _warehouse(home: Path, delays: dict[str, float]) -> None:
    """fct_flights and weather rows in January and February 2013, planes."""
    db = Settings(home=home).warehouse_db
    db.parent.mkdir(parents=True, exist_ok=True)
    fct = pd.DataFrame(
        [fct_row(1, "2013-01-15 15:00", delays["2013-01"]), fct_row(2, "2013-02-15 15:00", delays["2013-02"])]
    )
    weather = weather_frame([("EWR", "2013-01-15 15:00", 40.0), ("EWR", "2013-02-15 15:00", 35.0)])
    with duckdb.connect(str(db)) as con:
        load_tables(con, fct, weather, planes_frame([("N1", 2000, 2, 100)]))


@pytest.fixture
def instance(tmp_path: Path):
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance


def _tick(instance: dg.DagsterInstance, home: Path, cursor: str | None):
    defs = build_definitions("mlops", OrchestrationSettings())
    context = dg.build_sensor_context(
        instance_ref=instance.get_ref(),
        cursor=cursor,
        definitions=defs,
        resources={"hybridops": HybridopsResource(home=str(home))},
    )
    data = defs.get_sensor_def("warehouse_arrivals").evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return data


def _events(data) -> set[tuple[str, str | None]]:
    return {(event.asset_key.to_user_string(), event.partition) for event in data.asset_events or []}


def test_months_of_the_shared_warehouse_become_partitions_and_updates(instance, tmp_path: Path):
    home = tmp_path / "home"
    assert _tick(instance, home, None).skip_message.startswith("no warehouse")
    _warehouse(home, {"2013-01": 5.0, "2013-02": 30.0})
    first = _tick(instance, home, None)
    assert instance.get_dynamic_partitions(MONTHS) == ["2013-01", "2013-02"]
    assert _events(first) == {
        ("fct_flights", "2013-01"),
        ("fct_flights", "2013-02"),
        ("weather", "2013-01"),
        ("weather", "2013-02"),
        ("planes", None),
    }
    unchanged = _tick(instance, home, first.cursor)
    assert not unchanged.asset_events and "unchanged" in (unchanged.skip_message or "")

    _warehouse(home, {"2013-01": 5.0, "2013-02": 45.0})  # February's flights rewritten with other rows
    changed = _tick(instance, home, first.cursor)
    assert _events(changed) == {("fct_flights", "2013-02")}
    assert not changed.dynamic_partitions_requests
