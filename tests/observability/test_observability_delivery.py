"""Alert delivery end to end: real Dagster runs fail, the real exporter shows it, a real Prometheus with the
project's rules fires, a real Alertmanager with the project's routing notifies a webhook served here.

The story, one module-scoped run of it:

1. Alertmanager (the project's routing tree and inhibition rules, 1 s group waits, receivers pointed at
   the webhook) and Prometheus (the project's rules, 1 s scrape and evaluation) start.
2. A batch of reference data arrives with a broken ``planes.csv``: the real ``dimensions`` job runs and its
   blocking check ``file_readable_and_schema_valid`` fails (the batch is blocked, the run fails). The
   month's ``monthly_partition`` run fails too: its flights and weather files never arrived, and a missing
   file is a failed blocking file check as well (it pages like any unreadable file). So does the ML team's
   ``training`` (nothing to train on).
3. The exporter starts (thresholds from settings: ``airlines`` is stale after 1 s). Notifications arrive;
   the freshness alert of ``airlines`` fires in Prometheus but Alertmanager inhibits it.
4. A corrected ``planes.csv`` arrives and ``dimensions`` runs again: the check passes and the blocking
   alert's group gets a notification with the planes alert ``resolved`` (the month's files are still
   missing, so its alerts keep the group firing).

The only changes to the project's files: waiting times (``for`` of the freshness alert, Alertmanager's
``group_wait``/``group_interval``/``resolve_timeout``) and the receivers' URLs.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from observability_support import (
    ALERTMANAGER_CONFIG,
    Notification,
    alertmanager_binary,
    alertmanager_config_for_test,
    free_port,
    prometheus_binary,
    rule_files_with_for,
    run_alertmanager,
    run_prometheus,
    run_webhook,
    wait_for,
    without_timing,
)

from hybridops.settings import MonitoringSettings, Settings

pytestmark = pytest.mark.e2e

# planes.csv without the declared columns: the file check fails, the batch is blocked.
BROKEN_PLANES = "tailnum,colour\nN10156,blue\n"
EXPORTER_JOB = "hybridops-exporter"
BLOCKING = "HybridopsBlockingCheckFailed"
FAILING = "HybridopsPipelineFailing"
FRESHNESS = "HybridopsDataFreshnessBreached"


@dataclass
class Delivery:
    """What the stack did, recorded as it happened."""

    notifications: list[Notification] = field(default_factory=list)
    firing_alerts: list[dict[str, Any]] = field(default_factory=list)  # Prometheus, while blocked
    freshness_in_alertmanager: list[dict[str, Any]] = field(default_factory=list)  # while blocked
    blocking_in_alertmanager: list[dict[str, Any]] = field(default_factory=list)  # while blocked
    fixed_at: float = 0.0
    check_passed_after_fix: list[dict[str, Any]] = field(default_factory=list)
    dagster_source_min_up: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def of(self, receiver: str, alertname: str) -> list[Notification]:
        return [n for n in self.notifications if n.receiver == receiver and n.alertname == alertname]

    def one(self, receiver: str, alertname: str) -> Notification:
        """The only notification of ``alertname``'s group at ``receiver``."""
        found = self.of(receiver, alertname)
        assert len(found) == 1, (
            f"expected one {alertname} notification at {receiver}, got {len(found)}; all: {self.summary()}"
        )
        return found[0]

    def summary(self) -> list[tuple[str, str, str, list[str]]]:
        return [
            (n.receiver, n.alertname, n.status, sorted(str(sorted(a["labels"].items())) for a in n.alerts))
            for n in self.notifications
        ]


def _run_job(defs: Any, instance: Any, settings: Settings, job: str, partition: str | None = None) -> str:
    from hybridops.orchestration.runner import run_config_for

    result = defs.resolve_job_def(job).execute_in_process(
        run_config=run_config_for(settings), instance=instance, partition_key=partition, raise_on_error=False
    )
    return str(result.dagster_run.status.value)


def _planes_resolved(note: Notification) -> bool:
    return any(a["labels"]["asset"] == "planes" and a["status"] == "resolved" for a in note.alerts)


def _groups(notifications: list[Notification], status: str) -> set[tuple[str, str]]:
    return {(n.alertname, n.body["groupLabels"].get("team", "")) for n in notifications if n.status == status}


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivery]:
    prometheus_binary(), alertmanager_binary()
    import dagster as dg

    from hybridops.ingest.sources import packaged_source_dir
    from hybridops.observability.exporter import start_exporter, stop_exporter
    from hybridops.orchestration.instance import instance_env
    from hybridops.orchestration.runner import load_definitions, register_months

    started = time.monotonic()
    root = tmp_path_factory.mktemp("delivery")
    source = root / "source"
    source.mkdir()
    for table in ("planes", "airlines", "airports"):
        shutil.copy(packaged_source_dir() / f"{table}.csv", source / f"{table}.csv")
    (source / "planes.csv").write_text(BROKEN_PLANES)
    settings = Settings(
        home=root / "home",
        source_dir=source,
        # The threshold the freshness alert uses comes from here, through the exporter.
        monitoring=MonitoringSettings(freshness_max_age_hours_by_asset={"airlines": 1 / 3600}),
    )
    record = Delivery()
    port = free_port()
    with (
        pytest.MonkeyPatch.context() as env,
        run_webhook() as webhook,
        run_alertmanager(root / "alertmanager", alertmanager_config_for_test(webhook.url)) as am,
        # Started before the runs: Prometheus discovers its targets and Alertmanager in ~5 s, meanwhile
        # the exporter's port answers nothing (up == 0 alerts on nothing).
        run_prometheus(
            root / "prometheus",
            {EXPORTER_JOB: f"127.0.0.1:{port}"},
            rule_files_with_for(root / "rules", {FRESHNESS: "0s"}),
            alertmanager=am.address,
        ) as prom,
    ):
        for key, value in instance_env(settings).items():
            env.setenv(key, value)
        defs = load_definitions()
        instance = dg.DagsterInstance.get()
        try:
            assert _run_job(defs, instance, settings, "dimensions") == "FAILURE"  # blocked batch
            # The month cannot load either (no flights file arrived), nor can the model train.
            register_months(instance, ["2013-02"])  # the month's partition exists; its run then fails
            assert _run_job(defs, instance, settings, "monthly_partition", "2013-02") == "FAILURE"
            assert _run_job(defs, instance, settings, "training") == "FAILURE"
            record.seconds["stack start and dagster runs"] = time.monotonic() - started

            # The warehouse is read once, at the warm-up after the runs: DuckDB lets one process write or
            # many read, so a scrape opening it while the fixing run writes could fail that run.
            server, _, collector = start_exporter(settings, "127.0.0.1", port, cache_seconds=3600)
            try:
                phase = time.monotonic()
                expected = {(BLOCKING, "data"), (FAILING, "data"), (FAILING, "ml")}
                wait_for(
                    lambda: _groups(webhook.notifications(), "firing") >= expected and am.alerts(FRESHNESS),
                    30,
                    f"firing notifications of {sorted(expected)} and {FRESHNESS} in Alertmanager",
                )
                record.seconds["firing delivered"] = time.monotonic() - phase
                record.firing_alerts = [
                    a for a in prom.query("ALERTS")["data"]["result"] if a["metric"]["alertstate"] == "firing"
                ]
                record.freshness_in_alertmanager = am.alerts(FRESHNESS)
                record.blocking_in_alertmanager = am.alerts(BLOCKING)

                (source / "planes.csv").write_bytes((packaged_source_dir() / "planes.csv").read_bytes())
                phase = time.monotonic()
                assert _run_job(defs, instance, settings, "dimensions") == "SUCCESS"
                record.fixed_at = time.monotonic()
                record.seconds["fixing run"] = record.fixed_at - phase
                wait_for(
                    lambda: any(
                        n.alertname == BLOCKING and _planes_resolved(n) for n in webhook.notifications()
                    ),
                    30,
                    f"a notification of {BLOCKING} with the planes alert resolved",
                )
                record.seconds["resolved delivered"] = time.monotonic() - record.fixed_at
                record.check_passed_after_fix = prom.values(
                    'hybridops_dagster_asset_check_passed{asset="planes",check="file_readable_and_schema_valid"}'
                )
                record.dagster_source_min_up = prom.values(
                    'min_over_time(hybridops_exporter_source_up{source="dagster"}[10m])'
                )
                record.notifications = webhook.notifications()
            finally:
                stop_exporter(server, collector)
        finally:
            instance.dispose()
    record.seconds["total"] = time.monotonic() - started
    yield record


def test_the_test_config_keeps_the_projects_routing_and_inhibition() -> None:
    project = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    adapted = alertmanager_config_for_test("http://127.0.0.1:1")
    assert without_timing(adapted) == without_timing(project)
    assert adapted["inhibit_rules"] == project["inhibit_rules"]
    assert [r["name"] for r in adapted["receivers"]] == [r["name"] for r in project["receivers"]]
    for receiver in adapted["receivers"]:
        assert receiver["webhook_configs"] == [
            {"url": f"http://127.0.0.1:1/hooks/{receiver['name']}", "send_resolved": True}
        ]
    assert {adapted["route"]["group_wait"], adapted["route"]["group_interval"]} == {"1s"}


def test_each_team_is_notified_once_per_group(delivery: Delivery) -> None:
    # The data team's blocked batch pages the data team with the failed check (once: the resolve test
    # checks the group's whole history).
    notes = delivery.of("data-team-critical", BLOCKING)
    assert notes and notes[0].status == "firing", delivery.summary()
    blocked = notes[0]
    # The month's missing files are failed blocking file checks too (not a crash without a check result).
    assert sorted((a["labels"]["asset"], a["labels"]["check"]) for a in blocked.alerts) == [
        ("flights", "file_readable_and_schema_valid"),
        ("planes", "file_readable_and_schema_valid"),
        ("weather", "file_readable_and_schema_valid"),
    ]
    assert blocked.path == "/hooks/data-team-critical"
    # The same alert name routes by team: the two failed data jobs to the data team, grouped into one
    # notification; the failed ML job to the ML team.
    data_failed = delivery.one("data-team-critical", FAILING)
    assert data_failed.status == "firing"
    assert sorted(a["labels"]["dagster_job"] for a in data_failed.alerts) == [
        "dimensions",
        "monthly_partition",
    ]
    assert data_failed.path == "/hooks/data-team-critical"
    ml_failed = delivery.one("ml-team-critical", FAILING)
    assert ml_failed.status == "firing"
    assert [(a["labels"]["dagster_job"], a["labels"]["team"]) for a in ml_failed.alerts] == [
        ("training", "ml")
    ]
    assert ml_failed.path == "/hooks/ml-team-critical"
    # Nothing else reached anyone: no warning-level receiver, no default route, no ML alert at the data team.
    by_receiver = {(n.receiver, n.alertname) for n in delivery.notifications}
    assert by_receiver == {  # (a second notification of a group is checked in the resolve test)
        ("data-team-critical", BLOCKING),
        ("data-team-critical", FAILING),
        ("ml-team-critical", FAILING),
    }


def test_a_blocked_batch_silences_the_downstream_freshness_alert(delivery: Delivery) -> None:
    # The freshness alert really fired (threshold from settings: 1 s for airlines)...
    stale = [a["metric"] for a in delivery.firing_alerts if a["metric"]["alertname"] == FRESHNESS]
    assert [m["asset"] for m in stale] == ["airlines"]
    # ...reached Alertmanager, routed to the data team, and was inhibited by the blocked batch's alert.
    [freshness] = delivery.freshness_in_alertmanager
    assert [r["name"] for r in freshness["receivers"]] == ["data-team"]
    assert freshness["status"]["state"] == "suppressed"
    blocking_fingerprints = {a["fingerprint"] for a in delivery.blocking_in_alertmanager}
    # (Alertmanager names one inhibiting alert; any of the blocked batch's alerts inhibits it.)
    assert (
        freshness["status"]["inhibitedBy"]
        and set(freshness["status"]["inhibitedBy"]) <= blocking_fingerprints
    )
    # So the data team got no freshness notification.
    assert not [n for n in delivery.notifications if n.alertname == FRESHNESS]


def test_the_blocked_batch_alert_resolves_when_the_check_passes(delivery: Delivery) -> None:
    notes = delivery.of("data-team-critical", BLOCKING)
    assert notes[0].status == "firing" and not _planes_resolved(notes[0]), delivery.summary()
    resolved = next(n for n in notes if _planes_resolved(n))
    assert resolved.received > delivery.fixed_at
    # Only the planes alert resolved: the month's files never arrived, their checks still fail.
    assert sorted((a["labels"]["asset"], a["status"]) for a in resolved.alerts) == [
        ("flights", "firing"),
        ("planes", "resolved"),
        ("weather", "firing"),
    ]
    # It resolved because the check passed, not because the exporter stopped exporting it.
    assert [float(v["value"][1]) for v in delivery.check_passed_after_fix] == [1.0]
    assert [float(v["value"][1]) for v in delivery.dagster_source_min_up] == [1.0]
