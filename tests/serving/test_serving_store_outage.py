"""Scenario 10 of docs/reliability.md: redis-server stopped under load, against ``hybridops serve`` in a
process of its own. Every request is answered 200 or 503 with Retry-After, the 503s within the budget the
store timeout and retries set; /healthz and /readyz stay 200 throughout (readiness does not follow the
store: the replicas stay in the Service); when Redis is back the service reads it again without a restart."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
import requests
from serving_support import RedisServer, World, redis_settings, service_process

from hybridops.features.store import feature_store, materialize_month

FLIGHT = {
    "carrier": "UA", "flight": 1, "origin": "EWR", "dest": "IAH", "tailnum": "N1",
    "sched_dep": "2013-01-31T16:00:00",
}  # fmt: skip
BODY = json.dumps({"flights": [FLIGHT]}).encode()
TIMEOUT, RETRIES = 0.25, 1
BUDGET = (RETRIES + 1) * 2 * TIMEOUT  # most time one failed read may take (settings: serving.redis_retries)


@pytest.mark.slow  # Redis stopped under load: the slow group
def test_redis_stopped_under_load(world: World, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = redis_settings(
            world, redis, store_timeout_seconds=TIMEOUT, redis_retries=RETRIES, store_down_seconds=1.0,
            log_sample_rate=0.0,
        )  # fmt: skip
        with service_process(settings, tmp_path / "serve.log") as service:
            answers: list[tuple[float, int, float, str | None]] = []  # (sent, status, seconds, Retry-After)
            probes: list[tuple[str, int]] = []
            errors: list[str] = []
            marks: dict[str, float] = {}

            async def scenario() -> None:
                stop = asyncio.Event()
                timeout = aiohttp.ClientTimeout(total=30)
                async with aiohttp.ClientSession(timeout=timeout) as session:

                    async def work() -> None:
                        while not stop.is_set():
                            sent = time.monotonic()
                            try:
                                async with session.post(
                                    f"{service.url}/predict",
                                    data=BODY,
                                    headers={"content-type": "application/json"},
                                ) as r:
                                    await r.read()
                                    answers.append(
                                        (
                                            sent,
                                            r.status,
                                            time.monotonic() - sent,
                                            r.headers.get("Retry-After"),
                                        )
                                    )
                            except (TimeoutError, aiohttp.ClientError) as exc:
                                errors.append(repr(exc))
                            await asyncio.sleep(0.01)

                    async def probe() -> None:
                        while not stop.is_set():
                            for path in ("/healthz", "/readyz"):
                                try:
                                    async with session.get(f"{service.url}{path}") as r:
                                        probes.append((path, r.status))
                                except (TimeoutError, aiohttp.ClientError) as exc:
                                    errors.append(f"{path}: {exc!r}")
                            await asyncio.sleep(0.1)

                    tasks = [asyncio.create_task(work()) for _ in range(8)] + [asyncio.create_task(probe())]
                    await asyncio.sleep(1.5)
                    marks["down"] = time.monotonic()
                    await asyncio.to_thread(redis.stop)
                    await asyncio.sleep(3.0)
                    await asyncio.to_thread(redis.start)
                    # the same port, empty: materialize again, as the pipeline would
                    await asyncio.to_thread(materialize_month, feature_store(settings), "2013-01")
                    marks["up"] = time.monotonic()
                    await asyncio.sleep(2.0)
                    stop.set()
                    await asyncio.gather(*tasks)

            asyncio.run(scenario())
            final = requests.post(f"{service.url}/predict", json={"flights": [FLIGHT]}, timeout=10)
    finally:
        redis.stop()
    statuses = {status for _, status, _, _ in answers}
    refused = [(sent, seconds, retry) for sent, status, seconds, retry in answers if status == 503]
    during = [a for a in answers if marks["down"] + 0.5 < a[0] < marks["down"] + 3.0]
    after = [a for a in answers if a[0] > marks["up"] + 1.2]  # past serving.store_down_seconds
    print(
        f"\noutage: {len(answers)} answers {statuses}, 503 slowest {max(s for _, s, _ in refused) * 1000:.0f} ms, "
        f"{len(during)} during the outage, {len(after)} after recovery"
    )
    assert not errors, errors[:5]
    assert statuses == {200, 503}
    assert refused and all(retry == "5" for _, _, retry in refused)
    assert max(seconds for _, seconds, _ in refused) < BUDGET + 1.0  # slack for the busy test machine
    assert during and all(status == 503 for _, status, _, _ in during)
    assert {status for _, status in probes} == {200}, [p for p in probes if p[1] != 200][:5]
    assert after and all(status == 200 for _, status, _, _ in after)
    assert final.status_code == 200 and final.json()["degraded"] is False
