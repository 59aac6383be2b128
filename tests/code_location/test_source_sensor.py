"""The source sensor on a real Dagster instance: a folder whose files grow month by month.

Evaluated as the daemon evaluates it (``build_sensor_context`` with the instance and the definitions):
the first look adds every month present as a partition and requests one ingest run per month plus one
for the reference tables; a grown file adds and requests only the new month; an unchanged folder (even
with touched files) requests nothing; a corrected month is requested again under a new run key.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from source_builders import month_keys, write_months

from dagster_project.build import build_definitions
from dagster_project.partitions import MONTHS
from dagster_project.resources import HybridopsResource
from hybridops.settings import OrchestrationSettings


@pytest.fixture
def instance(tmp_path: Path):
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions("hybrid", OrchestrationSettings())


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, source: Path, home: Path, cursor: str | None):
    """One evaluation; the partitions it asks for are added as the daemon adds them."""
    sensor = defs.get_sensor_def("source_arrivals")
    context = dg.build_sensor_context(
        instance_ref=instance.get_ref(),  # as the daemon passes it: partitions added in the tick count
        cursor=cursor,
        definitions=defs,
        resources={"hybridops": HybridopsResource(home=str(home), source_dir=str(source))},
    )
    data = sensor.evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return data


def _requested(data) -> dict[str | None, list[str]]:
    return {
        request.partition_key: sorted(key.to_user_string() for key in request.asset_selection or [])
        for request in data.run_requests or []
    }


def test_growing_files_add_the_new_months_and_request_their_ingest(defs, instance, tmp_path: Path):
    source, home = tmp_path / "source", tmp_path / "home"
    write_months(source, [1, 2])
    first = _tick(defs, instance, source, home, None)
    assert instance.get_dynamic_partitions(MONTHS) == month_keys([1, 2])
    assert _requested(first) == {
        None: ["raw_airlines", "raw_airports", "raw_planes"],
        "2013-01": ["raw_flights", "raw_weather"],
        "2013-02": ["raw_flights", "raw_weather"],
    }
    assert len({r.run_key for r in first.run_requests}) == 3

    # Nothing new: no run, no partition (files rewritten with the same content count as nothing new).
    unchanged = _tick(defs, instance, source, home, first.cursor)
    assert not unchanged.run_requests and not unchanged.dynamic_partitions_requests
    write_months(source, [1, 2])
    os.utime(source / "planes.csv")
    touched = _tick(defs, instance, source, home, first.cursor)
    assert not touched.run_requests and not touched.dynamic_partitions_requests

    # One more month in each file: that month alone.
    write_months(source, [1, 2, 3])
    grown = _tick(defs, instance, source, home, touched.cursor or first.cursor)
    assert _requested(grown) == {"2013-03": ["raw_flights", "raw_weather"]}
    assert instance.get_dynamic_partitions(MONTHS) == month_keys([1, 2, 3])
    assert not _tick(defs, instance, source, home, grown.cursor).run_requests


def test_a_corrected_month_is_requested_again(defs, instance, tmp_path: Path):
    source, home = tmp_path / "source", tmp_path / "home"
    write_months(source, [1, 2])
    first = _tick(defs, instance, source, home, None)
    flights = pd.read_csv(source / "flights.csv", dtype=str, keep_default_na=False)
    row = flights.index[flights["month"] == "2"][0]
    flights.loc[row, "dep_delay"] = "999"
    flights.to_csv(source / "flights.csv", index=False)
    corrected = _tick(defs, instance, source, home, first.cursor)
    assert _requested(corrected) == {"2013-02": ["raw_flights"]}
    (request,) = corrected.run_requests
    assert request.run_key not in {r.run_key for r in first.run_requests}
    assert not corrected.dynamic_partitions_requests


def test_a_missing_source_folder_is_a_skip_with_the_reason(defs, instance, tmp_path: Path):
    data = _tick(defs, instance, tmp_path / "nowhere", tmp_path / "home", None)
    assert not data.run_requests
    assert "does not exist" in (data.skip_message or "")


def test_a_home_filled_by_hybridops_run_is_adopted_not_loaded_again(defs, instance, tmp_path: Path):
    source, home = tmp_path / "source", tmp_path / "home"
    write_months(source, [1, 2])
    # What `hybridops run --months 2013-01` leaves: January's partition and raw materializations.
    instance.add_dynamic_partitions(MONTHS, ["2013-01"])
    for table in ("flights", "weather"):
        instance.report_runless_asset_event(dg.AssetMaterialization(f"raw_{table}", partition="2013-01"))
    for table in ("planes", "airlines", "airports"):
        instance.report_runless_asset_event(dg.AssetMaterialization(f"raw_{table}"))
    first = _tick(defs, instance, source, home, None)
    assert _requested(first) == {"2013-02": ["raw_flights", "raw_weather"]}
    assert instance.get_dynamic_partitions(MONTHS) == ["2013-01", "2013-02"]
    # Later changes to an adopted month are seen against the digests of the first look.
    assert not _tick(defs, instance, source, home, first.cursor).run_requests


def test_an_empty_file_is_named_in_the_skip_and_never_requested(defs, instance, tmp_path: Path):
    source, home = tmp_path / "source", tmp_path / "home"
    source.mkdir()
    (source / "flights.csv").write_bytes(b"")  # created, not yet written
    data = _tick(defs, instance, source, home, None)
    assert not data.run_requests
    assert f"not read: {source / 'flights.csv'}: empty" in (data.skip_message or "")
