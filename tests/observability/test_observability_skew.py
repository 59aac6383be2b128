"""Skew audit: what the inference service served, recomputed by Feast point in time, must match."""

from __future__ import annotations

import dagster as dg
import pytest
from fastapi.testclient import TestClient

from hybridops.features.store import feature_store
from hybridops.observability.skew import audit, read_feature_log
from hybridops.orchestration.runner import load_definitions, run_config_for
from hybridops.serving.app import create_app
from hybridops.settings import ServingSettings, Settings
from hybridops.warehouse.db import connect, read_frame

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(pipeline_run):
    """A real service on the pipeline's state logs every vector it serves for 30 real flights."""
    home, _ = pipeline_run
    settings = Settings(home=home, serving=ServingSettings(log_sample_rate=1.0))
    with connect(settings.warehouse_db, read_only=True) as con:
        flights = read_frame(
            con,
            "select carrier, flight, origin, dest, tailnum, strftime(sched_dep_local, '%Y-%m-%dT%H:%M:%S') "
            "as sched_dep from fct_flights where month_key = '2013-02' and tailnum is not null "
            # the last afternoon of the materialized month: the online store's daily statistics (stamped
            # Feb 28 00:00) are known at these flights' as-of time; an earlier flight would be refused them
            "and sched_dep_local >= '2013-02-28 12:00' order by flight_id limit 30",
        )
    # localhost: the service answers only its allowed Host names (TestClient sends "testserver")
    with TestClient(create_app(settings), base_url="http://localhost") as client:  # shutdown flushes the log
        response = client.post("/predict", json={"flights": flights.to_dict(orient="records")})
        assert response.status_code == 200, response.text
    return settings, read_feature_log(settings)


def test_served_vectors_match_the_offline_store(served):
    settings, log = served
    assert len(log) >= 30
    report = audit(feature_store(settings), log)
    by_view = report.groupby("feature_view")["compared"].sum()
    # the request features (no stored row): recomputed from the logged request by the same function
    assert (by_view[["origin_weather", "carrier_delay_stats", "plane_profile", "flight_request"]] > 0).all()
    assert report["mismatches"].sum() == 0, report[report["mismatches"] > 0]


def test_a_changed_value_is_reported(served):
    settings, log = served
    tampered = log.copy()
    row = tampered.index[tampered["temp"].notna()][0]
    tampered.loc[row, "temp"] += 5.0
    tampered.loc[tampered.index[-1], "sched_hour"] += 1.0  # a service computing the hour its own way
    report = audit(feature_store(settings), tampered).set_index("feature")
    assert report.loc["temp", "mismatches"] == 1
    assert report.loc["sched_hour", "mismatches"] == 1
    assert report.drop(index=["temp", "sched_hour"])["mismatches"].sum() == 0


def test_the_audit_asset_writes_its_table_and_check(served):
    settings, _ = served
    job = load_definitions().resolve_job_def("skew_audit")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(run_config=run_config_for(settings), instance=instance)
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "online_offline_skew" and check.passed
    with connect(settings.warehouse_db, read_only=True) as con:
        stored = read_frame(con, "select sum(compared) as c, sum(mismatches) as m from skew_audit")
    assert stored["c"].iloc[0] > 0 and stored["m"].iloc[0] == 0
