"""The core contract on a Redis online store (a real redis-server on a free loopback port), including an
outage while serving: 503 with Retry-After, or degraded defaults, within the bound that the store timeout
and retries set, and recovery when Redis is back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from serving_support import RedisServer, World, redis_settings, running_server

FLIGHT = {
    "carrier": "UA",
    "flight": 1,
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N1",
    "sched_dep": "2013-01-31T16:00:00",
}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def test_redis_store_serves_the_same_predictions(world: World, redis: RedisServer) -> None:
    settings = redis_settings(world, redis)
    flights = [FLIGHT, dict(FLIGHT, carrier="ZZ", origin="LGA", tailnum=None)]
    with running_server(world.settings) as sqlite_server:
        expected = requests.post(f"{sqlite_server.url}/predict", json={"flights": flights}, timeout=10).json()
    with running_server(settings) as running:
        assert requests.get(f"{running.url}/readyz", timeout=5).status_code == 200
        body = requests.post(f"{running.url}/predict", json={"flights": flights}, timeout=10).json()
    assert body == expected
    assert body["predictions"][0]["degraded"] is False and body["predictions"][1]["degraded"] is True


def test_redis_outage_while_serving(world: World, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = redis_settings(world, redis)
        degrade = settings.model_copy(
            update={"serving": settings.serving.model_copy(update={"on_store_error": "degrade"})}
        )
        with running_server(settings) as failing, running_server(degrade) as degrading:
            assert (
                requests.post(f"{failing.url}/predict", json={"flights": [FLIGHT]}, timeout=60).status_code
                == 200
            )
            redis.stop()
            response = requests.post(f"{failing.url}/predict", json={"flights": [FLIGHT]}, timeout=60)
            assert response.status_code == 503 and response.headers["Retry-After"] == "5"
            assert "Traceback" not in response.text
            ready = requests.get(f"{failing.url}/readyz", timeout=60)
            assert ready.status_code == 200 and ready.json()["store"]["ok"] is False  # stays in the Service
            assert requests.get(f"{failing.url}/healthz", timeout=60).status_code == 200
            body = requests.post(f"{degrading.url}/predict", json={"flights": [FLIGHT]}, timeout=60).json()
            assert (
                body["degraded"] is True
                and body["predictions"][0]["feature_age_seconds"]["origin_weather"] is None
            )
            metrics = requests.get(f"{failing.url}/metrics", timeout=60).text
            assert 'hybridops_serving_requests_total{status="503"}' in metrics
            # Redis comes back (empty, on the same port): the service reads it again without a restart
            redis.start()
            time.sleep(settings.serving.store_down_seconds)
            response = requests.post(f"{failing.url}/predict", json={"flights": [FLIGHT]}, timeout=60)
            assert response.status_code == 200 and response.json()["degraded"] is True  # empty store
            assert requests.get(f"{failing.url}/readyz", timeout=60).json()["store"]["ok"] is True
    finally:
        redis.stop()


def _bound(timeout: float, retries: int) -> float:
    """Most time one failed read may take: every attempt waits for a connect and a reply, plus slack for
    the HTTP round trip on a busy machine."""
    return (retries + 1) * 2 * timeout + 1.0


@pytest.mark.parametrize("outage", ["stopped", "hung"])
def test_redis_outage_answers_within_the_bound(world: World, tmp_path: Path, outage: str) -> None:
    """A stopped Redis refuses connections; a hung one (SIGSTOP) accepts them and never answers, which
    redis-py without a socket timeout waits for forever."""
    timeout, retries = 0.3, 1
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = redis_settings(
            world, redis, store_timeout_seconds=timeout, redis_retries=retries, store_down_seconds=0.0
        )
        degrade = settings.model_copy(
            update={"serving": settings.serving.model_copy(update={"on_store_error": "degrade"})}
        )
        with running_server(settings) as failing, running_server(degrade) as degrading:
            for url in (failing.url, degrading.url):  # pooled connections exist before the outage
                assert requests.post(f"{url}/predict", json={"flights": [FLIGHT]}, timeout=10).ok
            redis.stop() if outage == "stopped" else redis.pause()
            for _ in range(2):  # a pooled connection, then a fresh one
                started = time.monotonic()
                response = requests.post(f"{failing.url}/predict", json={"flights": [FLIGHT]}, timeout=60)
                elapsed = time.monotonic() - started
                assert response.status_code == 503 and response.headers["Retry-After"] == "5"
                assert elapsed < _bound(timeout, retries), f"503 after {elapsed:.2f} s"
            started = time.monotonic()
            body = requests.post(f"{degrading.url}/predict", json={"flights": [FLIGHT]}, timeout=60).json()
            assert body["degraded"] is True and time.monotonic() - started < _bound(timeout, retries)
            started = time.monotonic()
            assert requests.get(f"{failing.url}/readyz", timeout=60).status_code == 200
            assert time.monotonic() - started < 1.0  # readiness never waits for the store
            assert requests.get(f"{failing.url}/healthz", timeout=5).status_code == 200
            if outage == "hung":
                redis.resume()
                response = requests.post(f"{failing.url}/predict", json={"flights": [FLIGHT]}, timeout=10)
                assert response.status_code == 200 and response.json()["degraded"] is False
    finally:
        redis.stop()


def test_a_failed_read_spares_the_store_for_a_while(world: World, tmp_path: Path) -> None:
    """After a failure /predict answers 503 at once for serving.store_down_seconds without trying the
    store (a hung store would otherwise hold each request), then tries it again by itself."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        pause = 2.0
        settings = redis_settings(world, redis, store_timeout_seconds=0.3, store_down_seconds=pause)
        with running_server(settings) as running:
            assert requests.post(f"{running.url}/predict", json={"flights": [FLIGHT]}, timeout=10).ok
            redis.pause()
            assert (
                requests.post(f"{running.url}/predict", json={"flights": [FLIGHT]}, timeout=10).status_code
                == 503
            )
            failed_at = time.monotonic()  # the pause started before this
            redis.resume()
            # the store answers again, but /predict does not ask it before the pause is over
            started = time.monotonic()
            response = requests.post(f"{running.url}/predict", json={"flights": [FLIGHT]}, timeout=10)
            if started - failed_at < pause - 1.0:  # the machine may be slow enough to let the pause end
                assert response.status_code == 503 and time.monotonic() - started < 0.3
            time.sleep(max(0.0, failed_at + pause + 0.1 - time.monotonic()))
            assert requests.post(f"{running.url}/predict", json={"flights": [FLIGHT]}, timeout=10).ok
    finally:
        redis.stop()
