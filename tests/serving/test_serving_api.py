"""Contract of the prediction service against a real uvicorn server on a loopback port: every endpoint,
every error path, online = batch predictions, the feature log."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from serving_support import World, running_server

from hybridops.features.keys import origin_hour_key, origin_slot_key, origin_utc_hour_key
from hybridops.features.request import REQUEST_FEATURES, request_features, with_request_features
from hybridops.features.store import feature_store, historical_features, load_definitions_module
from hybridops.inference.batch import score
from hybridops.serving.metrics import ServingMetrics, use_process_local_values
from hybridops.settings import SqliteOnlineStore

FLIGHT = {
    "carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", "tailnum": "N1",
    "sched_dep": "2013-01-31T16:00:00",
}  # fmt: skip
VIEWS = list(load_definitions_module().VIEW_FEATURES)


@pytest.fixture(scope="module")
def server(world: World):
    with running_server(world.settings) as running:
        yield running


def test_predict_answers_the_contract(server, world: World) -> None:
    response = requests.post(f"{server.url}/predict", json={"flights": [FLIGHT]}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": world.settings.mlflow.model_name, "version": "1"}
    assert body["degraded"] is False
    (prediction,) = body["predictions"]
    assert 0 < prediction["delay_probability"] < 1
    assert prediction["delayed"] == (prediction["delay_probability"] >= 0.5)
    assert set(prediction["feature_age_seconds"]) == set(VIEWS)
    assert all(age is not None for age in prediction["feature_age_seconds"].values())
    assert prediction["degraded"] is False


def test_thousand_flights_in_one_request(server) -> None:
    flights = [dict(FLIGHT, flight=i, tailnum=f"N{i % 4}") for i in range(1000)]
    response = requests.post(f"{server.url}/predict", json={"flights": flights}, timeout=30)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1000


def test_online_prediction_equals_batch_prediction(server, world: World) -> None:
    """At the end of the materialized month the online values are the latest: the point-in-time batch
    features of a flight at that instant are the online ones, and so are the scores."""
    sched_local = pd.Timestamp("2013-01-31T23:30:00")
    sched_utc = sched_local.tz_localize("America/New_York").tz_convert("UTC").tz_localize(None)
    flights = [
        dict(FLIGHT, origin=o, dest=d, carrier=c, tailnum=t, sched_dep=sched_local.isoformat())
        for o, d, c, t in [("EWR", "IAH", "UA", "N1"), ("JFK", "ORD", "AA", "N2"), ("EWR", "IAH", "B6", "N3")]
    ]
    online = requests.post(f"{server.url}/predict", json={"flights": flights}, timeout=10).json()
    entity_df = pd.DataFrame(
        {
            "flight_id": [f"f{i}" for i in range(len(flights))],
            "origin": [f["origin"] for f in flights],
            "carrier": [f["carrier"] for f in flights],
            "route": [f"{f['origin']}-{f['dest']}" for f in flights],
            "tailnum": [f["tailnum"] for f in flights],
            "origin_hour": [origin_hour_key(f["origin"], sched_local.to_pydatetime()) for f in flights],
            "origin_utc_hour": [origin_utc_hour_key(f["origin"], sched_utc.to_pydatetime()) for f in flights],
            "origin_slot": [origin_slot_key(f["origin"], sched_utc.to_pydatetime()) for f in flights],
            # the as-of time: departure minus the horizon
            "event_timestamp": [sched_utc - pd.Timedelta(minutes=world.settings.model.horizon_minutes)]
            * len(flights),
            "dest": [f["dest"] for f in flights],
            "sched_dep_utc": [sched_utc] * len(flights),
        }
    )
    # as batch scoring assembles them: the point-in-time Feast features, then the request features
    offline = with_request_features(historical_features(feature_store(world.settings), entity_df))
    expected = score(world.boosters[online["model"]["version"]], offline)
    got = np.array([p["delay_probability"] for p in online["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert not online["degraded"]


def test_unknown_entities_are_degraded_defaults(server) -> None:
    flights = [FLIGHT, dict(FLIGHT, carrier="ZZ", origin="LGA", dest="XXX", tailnum=None)]
    before = requests.get(f"{server.url}/metrics", timeout=5).text
    body = requests.post(f"{server.url}/predict", json={"flights": flights}, timeout=10).json()
    assert body["degraded"] is True
    known, unknown = body["predictions"]
    assert known["degraded"] is False and unknown["degraded"] is True
    assert unknown["feature_age_seconds"] == dict.fromkeys(VIEWS)
    assert 0 < unknown["delay_probability"] < 1  # NaN features are missing values for LightGBM
    after = requests.get(f"{server.url}/metrics", timeout=5).text
    assert (
        _value(after, "hybridops_serving_degraded_responses_total")
        == _value(before, "hybridops_serving_degraded_responses_total") + 1
    )
    assert _value(after, 'hybridops_serving_missing_features_total{view="plane_profile"}') >= 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"flights": [{k: v for k, v in FLIGHT.items() if k != "carrier"}]}, "flights[0].carrier"),
        ({"flights": [dict(FLIGHT, flight="abc")]}, "flights[0].flight"),
        ({"flights": [FLIGHT, dict(FLIGHT, sched_dep="tomorrow")]}, "flights[1].sched_dep"),
        ({"flights": []}, "flights"),
        ({"flight": [FLIGHT]}, "flights"),
        ({"flights": [dict(FLIGHT, extra=1)]}, "flights[0].extra"),
    ],
)
def test_bad_requests_are_422_naming_the_field(server, payload, field) -> None:
    response = requests.post(f"{server.url}/predict", json=payload, timeout=10)
    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert "Traceback" not in response.text


def test_invalid_json_is_422(server) -> None:
    response = requests.post(f"{server.url}/predict", data=b'{"flights": [', timeout=10)
    assert response.status_code == 422 and "body" in response.json()["detail"]


def test_too_large_bodies_are_413(server, world: World) -> None:
    limit = world.settings.serving.max_body_bytes
    flights = [FLIGHT] * (limit // 100)
    response = requests.post(f"{server.url}/predict", json={"flights": flights}, timeout=30)
    assert response.status_code == 413 and "max_body_bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit applies to the streamed body
        yield b'{"flights": ['
        for _ in range(limit // 50):
            yield b'{"carrier": "UA", "flight": 1, "origin": "EWR", "dest": "IAH", "sched_dep": "2013-01-01T05:15:00"},'
        yield b"]}"

    streamed = requests.post(f"{server.url}/predict", data=chunks(), timeout=30)
    assert streamed.status_code == 413, streamed.text[:300]


def test_healthz_readyz_openapi(server) -> None:
    assert requests.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{server.url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["model"]["version"] == "1"
    schema = requests.get(f"{server.url}/openapi.json", timeout=5).json()
    components = schema["components"]["schemas"]
    assert {"PredictRequest", "PredictResponse", "Flight", "ErrorResponse"} <= set(components)
    assert components["Flight"]["examples"][0]["carrier"] == "UA"
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/PredictRequest"


def test_metrics_exposition(server) -> None:
    requests.post(f"{server.url}/predict", json={"flights": [FLIGHT, FLIGHT]}, timeout=10)
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    for name in [
        "hybridops_serving_request_duration_seconds_bucket",
        'hybridops_serving_requests_total{status="200"}',
        'hybridops_serving_requests_total{status="422"}',
        "hybridops_serving_batch_size_bucket",
        "hybridops_serving_prediction_bucket",
        "hybridops_serving_flights_total",
        "hybridops_serving_missing_features_total",
        "hybridops_serving_degraded_responses_total",
        "hybridops_serving_model_reloads_total",
        "hybridops_serving_model_loaded_timestamp_seconds",
    ]:
        assert name in text, name
    assert 'hybridops_serving_model_info{name="' in text and 'version="1"' in text


def test_serve_keeps_metric_values_in_process(monkeypatch, tmp_path: Path) -> None:
    """Feast's import turns on prometheus_client's file-backed multiprocess values; ``hybridops serve``
    (one process, its own /metrics) turns them off before building its metrics."""
    from prometheus_client import generate_latest, values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    assert type(ServingMetrics().flights._value).__name__ == "MmapedValue"  # what Feast's import did
    use_process_local_values()
    metrics = ServingMetrics()
    metrics.predictions.observe(0.3)
    metrics.requests.labels("503").inc()  # label children are created later, also in process
    assert isinstance(metrics.predictions._sum, values.MutexValue)
    assert isinstance(metrics.requests.labels("503")._value, values.MutexValue)
    assert b'hybridops_serving_requests_total{status="503"} 1.0' in generate_latest(metrics.registry)


def test_feature_log_is_parquet(server, world: World) -> None:
    requests.post(f"{server.url}/predict", json={"flights": [FLIGHT]}, timeout=10)
    folder = world.settings.home_dir / "serving" / "feature_log"
    deadline = time.monotonic() + 5
    while not list(folder.glob("date=*/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.1)
    frame = pd.read_parquet(folder)
    assert {"served_at", "model_version", "route", "temp", "plane_seats", "delay_probability"} <= set(
        frame.columns
    )
    assert "origin_weather_event_timestamp" in frame.columns and len(frame) >= 1
    # the request features as served: the function's values for the logged request (16:00 EST, Thursday)
    logged = frame[REQUEST_FEATURES].to_numpy()
    again = request_features(
        frame["carrier"],
        frame["origin"],
        frame["dest"],
        frame["sched_dep_utc"],
        frame["tail_last_departed_at"],
    )
    np.testing.assert_array_equal(logged, again.to_numpy())
    ours = frame[frame["sched_dep"] == "2013-01-31 16:00:00"].iloc[0]
    assert ours[["sched_hour", "sched_minute", "day_of_week", "carrier_code"]].tolist() == [16, 0, 4, 1090]


def test_store_down_at_start(world: World, tmp_path: Path) -> None:
    broken = world.settings.feast.model_copy(
        update={"online_store": SqliteOnlineStore(path=str(tmp_path / "missing" / "dir" / "online.db"))}
    )
    with running_server(world.with_(feast=broken)) as running:
        assert requests.get(f"{running.url}/healthz", timeout=5).status_code == 200
        response = requests.post(f"{running.url}/predict", json={"flights": [FLIGHT]}, timeout=10)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert "Traceback" not in response.text
        # readiness does not depend on the store (an outage must not empty the Service); it reports it
        ready = requests.get(f"{running.url}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["store"]["ok"] is False
        assert "unavailable" in ready.json()["store"]["last_error"]
    degrade = world.with_(
        feast=broken, serving=world.settings.serving.model_copy(update={"on_store_error": "degrade"})
    )
    with running_server(degrade) as running:
        body = requests.post(f"{running.url}/predict", json={"flights": [FLIGHT]}, timeout=10).json()
        assert body["degraded"] is True and body["predictions"][0]["degraded"] is True


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or (line.startswith(name + "{") and name.endswith("}") is False):
            return float(line.rsplit(" ", 1)[1])
        if line.startswith(name) and name.endswith("}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
