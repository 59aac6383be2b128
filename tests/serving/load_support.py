"""A concurrent load generator for ``hybridops serve`` (aiohttp clients in a closed loop), shared by the load
scenarios (tests/serving/test_serving_load_goal.py, test_serving_overload.py), and the Prometheus text
format read back from ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np

FLIGHTS = [
    {"carrier": ("UA", "AA", "B6")[i % 3], "flight": i, "origin": ("EWR", "JFK")[i % 2], "dest": "IAH",
     "tailnum": f"N{i % 4}", "sched_dep": "2013-01-31T16:00:00"}
    for i in range(100)
]  # fmt: skip
BODY = json.dumps({"flights": FLIGHTS}).encode()  # encoded once: the generator spends its CPU on sending
HEADERS = {"content-type": "application/json"}


@dataclass
class Tally:
    statuses: dict[int, int] = field(default_factory=dict)
    latency: dict[int, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    missing_retry_after: int = 0

    def add(self, status: int, elapsed: float, retry_after: str | None) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latency.setdefault(status, []).append(elapsed)
        if status == 503 and not retry_after:
            self.missing_retry_after += 1

    def p(self, status: int, q: float) -> float:
        return float(np.percentile(self.latency[status], q)) if self.latency.get(status) else 0.0


async def _worker(session: aiohttp.ClientSession, url: str, until: float, tally: Tally) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            async with session.post(f"{url}/predict", data=BODY, headers=HEADERS) as response:
                await response.read()
                tally.add(response.status, time.monotonic() - started, response.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            tally.errors.append(repr(exc))


async def load(url: str, clients: int, seconds: float) -> Tally:
    """``clients`` clients each sending the 100-flight ``BODY`` to ``/predict`` as soon as the previous
    answer arrived, for ``seconds``."""
    tally = Tally()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        until = time.monotonic() + seconds
        await asyncio.gather(*(_worker(session, url, until, tally) for _ in range(clients)))
    return tally


def metric(text: str, name: str) -> float:
    """One sample of the Prometheus text format (0 when absent: a counter not yet incremented)."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
