"""Scenario 18 of docs/reliability.md: hostile and limit inputs against ``hybridops serve`` in a process of its
own. Every one is answered 4xx (naming the field) or 200 with defaults flagged degraded, fast, never 500; a
large refused body does not hold the event loop (/healthz answers meanwhile)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from serving_support import ServiceProcess, World, service_process

FLIGHT = {
    "carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", "tailnum": "N1",
    "sched_dep": "2013-01-31T16:00:00",
}  # fmt: skip
FAST = 5.0  # generous: each answer below takes milliseconds; a hang or a queue behind a slow one would not


@pytest.fixture(scope="module")
def service(world: World, tmp_path_factory: pytest.TempPathFactory):
    with service_process(world.settings, tmp_path_factory.mktemp("hostile") / "serve.log") as running:
        yield running


def _post(service: ServiceProcess, **kwargs) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(f"{service.url}/predict", timeout=60, **kwargs)
    elapsed = time.monotonic() - started
    assert response.status_code < 500, response.text[:500]
    assert "Traceback" not in response.text
    assert elapsed < FAST, f"{elapsed:.2f} s"
    return response, elapsed


@pytest.mark.parametrize(
    "sched_dep",
    [
        "9999-12-31T23:59:59",  # the 500: moved to UTC it overflows the calendar
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00+14:00",
        "1899-12-31T23:59:59",
        "2200-01-01T00:00:00",
    ],
)
def test_calendar_limits_are_422_naming_the_field(service: ServiceProcess, sched_dep: str) -> None:
    response, _ = _post(service, json={"flights": [FLIGHT, dict(FLIGHT, sched_dep=sched_dep)]})
    assert response.status_code == 422
    assert "flights[1].sched_dep" in response.json()["detail"] and "outside" in response.json()["detail"]


@pytest.mark.parametrize(
    "sched_dep",
    [
        "2199-12-31T23:59:59",  # far future: inside the range, no online value is that recent -> degraded
        "1900-01-01T00:00:00+14:00",
        "2013-01-31T16:00:00Z",  # aware UTC
        "2013-01-31T16:00:00-05:00",  # aware, the same instant as the naive New York time
        "2013-03-10T02:30:00",  # does not exist in New York (spring forward): read as 03:30 EDT
        "2013-11-03T01:30:00",  # exists twice (fall back): the first one
    ],
)
def test_edge_departures_get_a_defined_answer(service: ServiceProcess, sched_dep: str) -> None:
    response, _ = _post(service, json={"flights": [dict(FLIGHT, sched_dep=sched_dep)]})
    assert response.status_code == 200
    (prediction,) = response.json()["predictions"]
    assert 0 <= prediction["delay_probability"] <= 1


def test_far_future_departure_has_no_live_values(service: ServiceProcess) -> None:
    response, _ = _post(service, json={"flights": [dict(FLIGHT, sched_dep="2199-12-31T23:59:59")]})
    (prediction,) = response.json()["predictions"]
    ages = prediction["feature_age_seconds"]
    assert prediction["degraded"] is True
    assert ages["origin_weather"] is None and ages["carrier_delay_stats"] is None  # past their ttl
    assert ages["plane_profile"] is not None  # static reference data never expires


def test_naive_and_aware_departures_agree(service: ServiceProcess) -> None:
    naive, _ = _post(service, json={"flights": [FLIGHT]})
    aware, _ = _post(service, json={"flights": [dict(FLIGHT, sched_dep="2013-01-31T21:00:00+00:00")]})
    assert naive.json() == aware.json()


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"", {}),
        (b"null", {}),
        (b"[]", {}),
        (b'"flights"', {}),
        (b'{"flights": {}}', {}),
        (b'{"flights": [null]}', {}),
        (b'{"flights": [1, 2]}', {}),
        (b'{"flights": [{"carrier": ["UA"]}]}', {}),
        (b'{"flights": [{"carrier": "UA", "flight": 1e400}]}', {}),
        (b'{"flights": [{"carrier": "UA", "flight": NaN}]}', {}),
        (b"\xff\xfe{\x00", {}),
        (b'{"flights": [' + b"[" * 5000 + b"]" * 5000 + b"]}", {}),
        (b'{"flights": []}', {"content-type": "text/plain"}),
        (b'{"flights": [{"carrier": "U\x00A"}]}', {}),
    ],
)
def test_malformed_bodies_are_422(service: ServiceProcess, body: bytes, headers: dict[str, str]) -> None:
    response, _ = _post(service, data=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"]


@pytest.mark.parametrize(("length", "statuses"), [("3000000", {413}), ("99999999999999999999", {400, 413})])
def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    service: ServiceProcess, length: str, statuses: set[int]
) -> None:
    """The client declares more than serving.max_body_bytes and sends 10 bytes: refused at once (no wait
    for the rest of the body)."""
    port = int(service.url.rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n".encode()
            + b"x" * 10
        )
        reply = sock.recv(65536)
    assert time.monotonic() - started < FAST
    status = int(reply.split(b" ", 2)[1])
    assert status in statuses, reply[:300]


def test_unknown_entities_are_degraded_defaults(service: ServiceProcess) -> None:
    flights = [dict(FLIGHT, carrier="ÿ\u202e", origin="ZZZZ", dest="../", tailnum="' OR 1=1-")]
    response, _ = _post(service, json={"flights": flights})
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True and body["predictions"][0]["degraded"] is True


def test_a_2_mb_body_is_413_at_once(service: ServiceProcess, world: World) -> None:
    body = b'{"flights": [' + b" " * (2 * 1024 * 1024) + b"]}"
    assert len(body) > world.settings.serving.max_body_bytes
    response, _ = _post(service, data=body)
    assert response.status_code == 413 and "max_body_bytes" in response.json()["detail"]


def test_10000_flights_are_refused_without_holding_the_loop(service: ServiceProcess, world: World) -> None:
    """10,000 flights (about 1.3 MB, under the body limit) over serving.max_flights: 422 naming the limit;
    /healthz keeps answering while the large body is sent and parsed."""
    flights = [dict(FLIGHT, flight=i) for i in range(10_000)]
    assert len(flights) > world.settings.serving.max_flights
    health: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.monotonic()
            assert requests.get(f"{service.url}/healthz", timeout=10).status_code == 200
            health.append(time.monotonic() - started)
            time.sleep(0.01)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        slowest = 0.0
        for _ in range(3):
            response, elapsed = _post(service, json={"flights": flights})
            assert response.status_code == 422 and "max_flights" in response.json()["detail"]
            slowest = max(slowest, elapsed)
    finally:
        done.set()
        thread.join()
    print(
        f"\n10,000 flights: 422 in at most {slowest * 1000:.0f} ms, /healthz at most {max(health) * 1000:.0f} ms"
    )
    assert health and max(health) < 2.0, f"/healthz waited {max(health):.2f} s"
    metrics = requests.get(f"{service.url}/metrics", timeout=5).text
    assert 'hybridops_serving_requests_total{status="500"}' not in metrics
    assert 'hybridops_serving_errors_total{reason="internal"}' not in metrics
