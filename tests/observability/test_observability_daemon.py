"""Scenario 6 of issue 14, live: a real ``dagster-daemon`` stops; its liveness check fails within the
tolerance, the heartbeat alert fires and reaches Alertmanager; then the exporter stops and the absent()
alert fires.

One story on loopback: Alertmanager (the project's routing, receivers pointed at a webhook here),
Prometheus (the project's rules, 1 s scrape and evaluation, ``for`` of the two alerts set to 0 s: the
rules' waiting times are not what is tested), the real exporter on the daemon's instance, and the
daemon as ``hybridops ui`` starts it (``daemon_command``: the project's code location). The heartbeat
threshold comes from settings (``monitoring.daemon_heartbeat_max_age_seconds``) through the exporter;
the probe is ``dagster-daemon liveness-check`` with ``DAGSTER_DAEMON_HEARTBEAT_TOLERANCE``, the variable
the chart sets from ``dagster.daemon.heartbeatToleranceSeconds`` (tests/deploy/test_deploy_daemon_liveness.py
asserts the wiring; here a short tolerance keeps the wait short).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
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
from hybridops.orchestration.instance import daemon_command, initialize_storage
from hybridops.processes import default_signals
from hybridops.settings import MonitoringSettings, Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a daemon started, stopped and paged about: the slow group

STALE = "HybridopsDaemonHeartbeatStale"
ABSENT = "HybridopsExporterAbsent"
THRESHOLD_S = 20.0  # monitoring.daemon_heartbeat_max_age_seconds
TOLERANCE_S = 5  # DAGSTER_DAEMON_HEARTBEAT_TOLERANCE of the probe
HEARTBEAT_INTERVAL_S = 30  # Dagster's; the probe allows interval + tolerance
DAGSTER_DAEMON = str(Path(sys.executable).with_name("dagster-daemon"))


def _liveness(env: dict[str, str]) -> tuple[int, str]:
    probe = subprocess.run(
        [DAGSTER_DAEMON, "liveness-check"],
        env={**env, "DAGSTER_DAEMON_HEARTBEAT_TOLERANCE": str(TOLERANCE_S)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return probe.returncode, probe.stdout.strip()


def _firing(prom: Any, alertname: str) -> list[dict[str, str]]:
    return [
        a["metric"]
        for a in prom.values(f'ALERTS{{alertname="{alertname}",alertstate="firing"}}')
        if a["metric"]["alertname"] == alertname
    ]


def prom_alerts(prom: Any, alertname: str) -> list[dict[str, Any]]:
    """Prometheus's own view of an alert (``/api/v1/alerts``: state and ``activeAt``)."""
    body = requests.get(f"{prom.url}/api/v1/alerts", timeout=10).json()
    return [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == alertname]


def _timestamp(rfc3339: str) -> float:
    """Unix seconds of Prometheus's RFC 3339 times (nanosecond fractions cut to microseconds)."""
    head, _, fraction = rfc3339.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]}+00:00").timestamp()


def test_a_stopped_daemon_fails_its_probe_and_pages(tmp_path: Path) -> None:
    prometheus_binary(), alertmanager_binary()
    settings = Settings(
        home=tmp_path / "home",
        monitoring=MonitoringSettings(
            daemon_heartbeat_max_age_seconds=THRESHOLD_S, exporter_sources=["dagster"]
        ),
    )
    initialize_storage(settings)
    command, instance_env = daemon_command(settings)
    env = {**os.environ, **instance_env}
    port = free_port()
    clock_offset = time.time() - time.monotonic()  # webhook receipts are monotonic times
    with (
        run_webhook() as webhook,
        run_alertmanager(tmp_path / "alertmanager", alertmanager_config_for_test(webhook.url)) as am,
        run_prometheus(
            tmp_path / "prometheus",
            {"hybridops-exporter": f"127.0.0.1:{port}"},
            rule_files_with_for(tmp_path / "rules", {STALE: "0s", ABSENT: "0s"}),
            alertmanager=am.address,
        ) as prom,
    ):
        log = (tmp_path / "daemon.log").open("wb")
        # A session of its own: the daemon and the code server it starts are stopped together.
        daemon = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_signals,
        )
        server = collector = None
        try:
            server, _, collector = start_exporter(settings, "127.0.0.1", port)
            # Alive: every required daemon's heartbeat is fresh in Prometheus (the daemons start one by
            # one), the probe passes, nothing fires.
            with dg.DagsterInstance.from_config(instance_env["DAGSTER_HOME"]) as instance:
                required = set(instance.get_required_daemon_types())
            assert {"SENSOR", "ASSET", "QUEUED_RUN_COORDINATOR"} <= required, required

            def fresh() -> set[str]:
                return {
                    v["metric"]["daemon"]
                    for v in prom.values("hybridops_dagster_daemon_heartbeat_age_seconds")
                    if float(v["value"][1]) < THRESHOLD_S
                }

            wait_for(
                lambda: required <= fresh(), 180, f"fresh heartbeats of {sorted(required)}", interval=1.0
            )
            daemons = sorted(
                v["metric"]["daemon"] for v in prom.values("hybridops_dagster_daemon_heartbeat_age_seconds")
            )
            assert _liveness(env) == (0, "Daemon live")
            assert not _firing(prom, STALE)

            # Stopped without a word (SIGKILL: a crash or an OOM kill; SIGTERM would be just as silent).
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(30)
            stopped = time.time()
            # The clocks of the probe and the alert run from each daemon's last heartbeat.
            last_beats = {
                v["metric"]["daemon"]: float(v["value"][1])
                for v in prom.values("hybridops_dagster_daemon_last_heartbeat_timestamp_seconds")
            }
            assert set(last_beats) == set(daemons)

            probes: list[tuple[float, float, int]] = []  # (started, ended, exit status), one after another

            def probe() -> bool:
                started = time.time()
                status = _liveness(env)[0]
                probes.append((started, time.time(), status))
                return status == 1

            wait_for(probe, HEARTBEAT_INTERVAL_S + TOLERANCE_S + 90, "liveness-check to fail", interval=1.0)
            assert _liveness(env) == (1, "Daemon(s) not running")
            # Dagster's rule: dead once now > last heartbeat + interval + tolerance for any daemon, so by
            # the newest heartbeat's deadline at the latest. The probe that fails is the first one started
            # after that deadline, or the one running across it (each run spends seconds importing).
            deadline = max(last_beats.values()) + HEARTBEAT_INTERVAL_S + TOLERANCE_S
            first_failed, probe_failed, _ = probes[-1]
            longest = max(ended - started for started, ended, _ in probes)
            assert first_failed <= deadline + longest + 2, (deadline, probes)
            assert all(status == 0 for started, _, status in probes[:-1])
            fired = wait_for(lambda: _firing(prom, STALE), THRESHOLD_S + 60, f"{STALE} firing", interval=1.0)
            assert {(a["severity"], a["team"]) for a in fired} == {("critical", "data")}
            wait_for(
                lambda: {a["daemon"] for a in _firing(prom, STALE)} == set(daemons),
                THRESHOLD_S + 30,
                f"{STALE} for every daemon",
            )
            # Each daemon's alert became active (for: 0s, so firing) once its age crossed the threshold.
            active_after_beat = {
                a["labels"]["daemon"]: _timestamp(a["activeAt"]) - last_beats[a["labels"]["daemon"]]
                for a in prom_alerts(prom, STALE)
            }
            assert all(THRESHOLD_S <= late <= THRESHOLD_S + 5 for late in active_after_beat.values()), (
                active_after_beat
            )
            note = wait_for(
                lambda: [n for n in webhook.notifications() if n.alertname == STALE],
                30,
                f"{STALE} at the webhook",
            )[0]
            delivered_after = note.received + clock_offset - stopped
            assert note.receiver == "data-team-critical" and note.status == "firing"
            assert {a["labels"]["daemon"] for a in note.alerts} <= set(daemons)

            # The exporter goes away: its metrics disappear, which no threshold can see; absent() does.
            stop_exporter(server, collector)
            server = None
            gone = time.time()
            wait_for(lambda: _firing(prom, ABSENT), 60, f"{ABSENT} firing", interval=1.0)
            [absent] = prom_alerts(prom, ABSENT)
            absent_after = _timestamp(absent["activeAt"]) - gone
            absent_note = wait_for(
                lambda: [n for n in webhook.notifications() if n.alertname == ABSENT],
                30,
                f"{ABSENT} at the webhook",
            )[0]
            assert absent_note.receiver == "data-team-critical" and absent_note.status == "firing"
            absent_delivered_after = absent_note.received + clock_offset - gone
        finally:
            if server is not None and collector is not None:
                stop_exporter(server, collector)
            if daemon.poll() is None:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(30)
            log.close()
    newest = max(last_beats.values())
    print(
        f"\ndaemons {daemons}; SIGKILL {stopped - newest:.1f} s after the newest heartbeat; "
        f"liveness-check (tolerance {TOLERANCE_S} s + interval {HEARTBEAT_INTERVAL_S} s) failed "
        f"{probe_failed - newest:.1f} s after it ({probe_failed - stopped:.1f} s after the kill; "
        f"{len(probes)} probe runs of up to {longest:.1f} s each); "
        f"{STALE} (threshold {THRESHOLD_S:.0f} s) active {min(active_after_beat.values()):.1f}-"
        f"{max(active_after_beat.values()):.1f} s after each daemon's last heartbeat, first notification "
        f"{delivered_after:.1f} s after the kill; exporter stopped: {ABSENT} active after "
        f"{absent_after:.1f} s, delivered after {absent_delivered_after:.1f} s"
    )
