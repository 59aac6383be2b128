"""The degraded-answer alert live (issue 14, part 3): ``hybridops serve`` answers flights it has features
for, then flights whose plane it does not know (``degraded: true``); a real Prometheus computes the ratio
from the service's own counters against the threshold the exporter exports from settings, fires
``HybridopsServingDegradedRatioHigh`` (``for`` set to 0 s), and a real Alertmanager notifies the ML team.

The service runs on the small real world of tests/serving (a Feast store and a LightGBM champion in
MLflow), as a process of its own.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests
from observability_support import (
    alertmanager_binary,
    alertmanager_config_for_test,
    free_port,
    prometheus_binary,
    rule_files_with_for,
    run_alertmanager,
    run_prometheus,
    run_webhook,
    wait_for,
)

from hybridops.observability.exporter import start_exporter, stop_exporter
from hybridops.settings import MonitoringSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from serving_support import build_world, service_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # services, Prometheus and Alertmanager: the slow group

ALERT = "HybridopsServingDegradedRatioHigh"
THRESHOLD = 0.25  # monitoring.max_degraded_response_ratio
FLIGHT = {
    "carrier": "UA", "flight": 1, "origin": "EWR", "dest": "IAH", "tailnum": "N1",
    "sched_dep": "2013-01-31T16:00:00",
}  # fmt: skip
UNKNOWN_PLANE = dict(FLIGHT, tailnum="N999ZZ")
RATIO = 'sum(rate(hybridops_serving_degraded_responses_total[5m])) / sum(rate(hybridops_serving_requests_total{status="200"}[5m]))'


def _traffic(url: str, flight: dict[str, object], stop: threading.Event, answers: list[bool]) -> None:
    while not stop.is_set():
        response = requests.post(f"{url}/predict", json={"flights": [flight]}, timeout=10)
        assert response.status_code == 200, response.text
        answers.append(bool(response.json()["degraded"]))
        time.sleep(0.02)


@pytest.fixture
def world_settings(tmp_path: Path) -> Iterator[object]:
    saved = mlflow.get_tracking_uri()
    try:
        yield build_world(tmp_path / "home").settings
    finally:
        mlflow.set_tracking_uri(saved)


def test_degraded_answers_page_the_ml_team(world_settings, tmp_path: Path) -> None:
    prometheus_binary(), alertmanager_binary()
    settings = world_settings.model_copy(
        update={
            "monitoring": MonitoringSettings(
                exporter_sources=["dagster"], max_degraded_response_ratio=THRESHOLD
            )
        }
    )
    port = free_port()
    server, _, collector = start_exporter(settings, "127.0.0.1", port)
    try:
        with (
            service_process(settings, tmp_path / "serve.log") as service,
            run_webhook() as webhook,
            run_alertmanager(tmp_path / "alertmanager", alertmanager_config_for_test(webhook.url)) as am,
            run_prometheus(
                tmp_path / "prometheus",
                {"hybridops-exporter": f"127.0.0.1:{port}", "hybridops-inference": service.url[7:]},
                rule_files_with_for(tmp_path / "rules", {ALERT: "0s"}),
                alertmanager=am.address,
            ) as prom,
        ):
            for phase, flight in (("good", FLIGHT), ("degraded", UNKNOWN_PLANE)):
                stop, answers = threading.Event(), []
                thread = threading.Thread(
                    target=_traffic, args=(service.url, flight, stop, answers), daemon=True
                )
                thread.start()
                started = time.monotonic()
                try:
                    if phase == "good":
                        wait_for(lambda: prom.values(f"({RATIO}) >= 0"), 60, "the ratio in Prometheus")
                        time.sleep(3)
                        good_ratio = float(prom.values(RATIO)[0]["value"][1])
                        assert good_ratio == 0.0 and not prom.values(f'ALERTS{{alertname="{ALERT}"}}')
                        good = len(answers)
                    else:
                        wait_for(
                            lambda: prom.values(f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}'),
                            90,
                            f"{ALERT} firing",
                        )
                        fired_after = time.monotonic() - started
                        fired_ratio = float(prom.values(RATIO)[0]["value"][1])
                        note = wait_for(
                            lambda: [n for n in webhook.notifications() if n.alertname == ALERT],
                            30,
                            "notification",
                        )[0]
                        delivered_after = note.received - started
                        degraded = len(answers)
                finally:
                    stop.set()
                    thread.join(15)
                assert set(answers) == {phase == "degraded"}, phase  # the service flagged what we meant
    finally:
        stop_exporter(server, collector)
    assert note.receiver == "ml-team" and note.status == "firing"
    [alert] = note.alerts
    assert alert["labels"]["severity"] == "warning" and alert["labels"]["team"] == "ml"
    assert "threshold 25%" in alert["annotations"]["description"]
    assert fired_ratio > THRESHOLD
    print(
        f"\n{good} good answers (ratio {good_ratio}); then degraded ones: {ALERT} firing after "
        f"{fired_after:.1f} s ({degraded} degraded answers, ratio {fired_ratio:.2f} > {THRESHOLD}), "
        f"at the ml-team webhook after {delivered_after:.1f} s"
    )
