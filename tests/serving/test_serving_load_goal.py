"""Scenario 19, first half, of docs/reliability.md: load up to the latency goal.

The goal is the serving SLO that the alert ``HybridopsServingLatencyHigh`` (infra/prometheus/rules) watches:
the p99 of ``POST /predict`` under its threshold (read from the alert's expression, 250 ms), here for
100-flight requests from ``GOAL_CLIENTS`` concurrent clients in a closed loop against one ``hybridops serve``
process with the default admission control, on the 2-core machine that also runs the load generator.

A real Prometheus scrapes the service every second with the project's rule files: at that load every request
is answered 200 (zero errors, nothing refused), the client's p99 and Prometheus' p99 of the service's
histogram are under the goal, the alert's own expression stays under its threshold, and the service's
counters as Prometheus stored them equal the load generator's counts exactly.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import pytest
import requests
from load_support import FLIGHTS, Tally, load
from serving_support import World, service_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "observability"))
from observability_support import (
    RULES_DIR,
    Prometheus,
    alert_rules,
    run_prometheus,
    wait_for,
)

GOAL_CLIENTS = 4
LOAD_SECONDS = 10.0
ALERT = "HybridopsServingLatencyHigh"


def goal_seconds() -> float:
    """The p99 threshold of the latency alert (``histogram_quantile(0.99, ...) > <seconds>``)."""
    (rule,) = [rule for rule in alert_rules() if rule.get("alert") == ALERT]
    match = re.search(r"histogram_quantile\(0\.99,.*\)\s*>\s*([0-9.]+)\s*$", rule["expr"].strip(), re.DOTALL)
    assert match, rule["expr"]
    return float(match.group(1))


def _sample(prometheus: Prometheus, expr: str) -> tuple[float, float]:
    """(timestamp, value) of a one-series instant query."""
    (series,) = prometheus.values(expr)
    at, value = series["value"]
    return float(at), float(value)


def _scraped_after(prometheus: Prometheus, instant: float) -> dict[str, float]:
    """The service's counters from the first scrape that started after ``instant`` (Unix seconds)."""
    names = {
        "ok": 'hybridops_serving_requests_total{status="200"}',
        "all": "sum(hybridops_serving_requests_total)",
        "rejected": "sum(hybridops_serving_rejected_requests_total) or vector(0)",
        "errors": "sum(hybridops_serving_errors_total) or vector(0)",
        "flights": "hybridops_serving_flights_total",
        "histogram": "hybridops_serving_request_duration_seconds_count",
    }

    def scraped() -> bool:
        (series,) = prometheus.values('timestamp(up{job="inference"})')
        return float(series["value"][1]) > instant

    wait_for(scraped, 30, "a scrape after the load")
    return {key: _sample(prometheus, expr)[1] for key, expr in names.items()}


@pytest.mark.slow  # load for tens of seconds: the slow group
def test_the_latency_goal_is_met_at_its_load(world: World, tmp_path: Path) -> None:
    goal = goal_seconds()
    serving = world.settings.serving.model_copy(update={"log_sample_rate": 0.0})
    settings = world.with_(serving=serving)
    defaults = type(serving)()
    assert (serving.max_inflight_requests, serving.max_queue_wait_seconds) == (
        defaults.max_inflight_requests,
        defaults.max_queue_wait_seconds,
    ), "the goal is measured with the default admission control"
    with service_process(settings, tmp_path / "serve.log") as service:
        target = service.url.removeprefix("http://")
        with run_prometheus(
            tmp_path / "prometheus", {"inference": target}, sorted(RULES_DIR.glob("*.yaml"))
        ) as prom:
            asyncio.run(load(service.url, GOAL_CLIENTS, 1.0))  # warm-up
            wait_for(lambda: prom.values('up{job="inference"} == 1'), 30, "Prometheus scraping the service")
            before = _scraped_after(prom, time.time())
            started = time.time()
            tally: Tally = asyncio.run(load(service.url, GOAL_CLIENTS, LOAD_SECONDS))
            ended = time.time()
            after = _scraped_after(prom, ended)
            window = f"{int(time.time() - started) + 2}s"
            served_p99 = _sample(
                prom,
                "histogram_quantile(0.99, sum by (le) "
                f"(increase(hybridops_serving_request_duration_seconds_bucket[{window}])))",
            )[1]
            (rule,) = [rule for rule in alert_rules() if rule.get("alert") == ALERT]
            firing_expr = prom.values(rule["expr"])  # the alert's own expression, its 5m rate included
        # nothing else hit the service meanwhile (the scrapes are not /predict)
        assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
    answered = sum(tally.statuses.values())
    print(
        f"\nload goal: {GOAL_CLIENTS} clients x 100 flights for {LOAD_SECONDS:.0f} s: {tally.statuses}, "
        f"{answered / (ended - started):.0f} requests/s, client p50 {tally.p(200, 50) * 1000:.1f} ms, "
        f"p99 {tally.p(200, 99) * 1000:.1f} ms, max {max(tally.latency.get(200, [0])) * 1000:.1f} ms; "
        f"Prometheus p99 {served_p99 * 1000:.1f} ms (goal {goal * 1000:.0f} ms)"
    )
    # zero errors: every request answered 200, nothing refused by admission control
    assert not tally.errors, tally.errors[:3]
    assert set(tally.statuses) == {200}, tally.statuses
    assert answered >= GOAL_CLIENTS * LOAD_SECONDS, "the load generator barely sent anything"
    # the goal, from the client and from the service's own histogram
    assert tally.p(200, 99) < goal
    assert served_p99 < goal
    assert not firing_expr, firing_expr
    # the counters Prometheus scraped equal the load generator's counts
    assert after["ok"] - before["ok"] == answered
    assert after["all"] - before["all"] == answered
    assert after["histogram"] - before["histogram"] == answered
    assert after["flights"] - before["flights"] == answered * len(FLIGHTS)
    assert after["rejected"] - before["rejected"] == 0
    assert after["errors"] - before["errors"] == 0
