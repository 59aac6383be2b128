"""Scenarios 3 and 7 of issue 14 in one real pipeline run: a blocking check fails, nothing downstream is
materialized, the result is in Dagster's event log, and the alerts reach Alertmanager.

The source folder holds January (every 9th flight of the real month) and February with half as many
(every 18th: the 50 % volume drop), and its flights file was last modified three days ago (a stale
source: no new data). ``hybridops run --months 2013-01:2013-02`` runs the real CLI and Dagster; then the
real exporter reads the run's Dagster instance with thresholds from settings, a real Prometheus with the
project's rules scrapes it (``for`` of the stale-source alert set to 0 s) and a real Alertmanager with the
project's routing notifies a webhook here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from observability_support import (
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
)

from hybridops.ingest.sources import packaged_source_dir
from hybridops.settings import MonitoringSettings, Settings

pytestmark = pytest.mark.e2e

EXE = str(Path(sys.executable).with_name("hybridops"))
BLOCKING = "HybridopsBlockingCheckFailed"
STALE_SOURCE = "HybridopsSourceStale"
SOURCE_AGE_S = 3 * 86400  # the flights file's age
SOURCE_MAX_AGE_HOURS = {"flights": 24.0, "weather": 24.0}  # monitoring.source_max_age_hours
DOWNSTREAM_GROUPS = ("features", "training", "inference", "monitoring")


@dataclass
class Story:
    summary: dict[str, Any]
    downstream: dict[str, list[str]] = field(default_factory=dict)  # asset -> materialized partitions
    unpartitioned_materialized: list[str] = field(default_factory=list)
    check_record: Any = None
    notifications: list[Notification] = field(default_factory=list)
    check_gauge: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _flights(source: Path) -> None:
    flights = pd.read_csv(packaged_source_dir() / "flights.csv.zip", dtype=str, keep_default_na=False)
    january = flights[flights["month"] == "1"].iloc[::9]
    february = flights[flights["month"] == "2"].iloc[::18]  # half the volume, every day still there
    pd.concat([january, february]).to_csv(source / "flights.csv", index=False)


def _downstream(home: Path) -> tuple[dict[str, list[str]], list[str], Any]:
    import dagster as dg

    from hybridops.orchestration.runner import load_definitions

    graph = load_definitions().resolve_asset_graph()
    # feast_registry (the feature definitions applied) belongs to the dimensions job, before any month.
    keys = [
        k
        for k in graph.get_all_asset_keys()
        if graph.get(k).group_name in DOWNSTREAM_GROUPS and k.to_user_string() != "feast_registry"
    ]
    assert {"training_set", "candidate_model", "champion_model"} <= {k.to_user_string() for k in keys}
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        partitions = {
            k.to_user_string(): sorted(instance.get_materialized_partitions(k))
            for k in keys
            if graph.get(k).is_partitioned
        }
        materialized = [
            k.to_user_string()
            for k in keys
            if not graph.get(k).is_partitioned and instance.get_latest_materialization_event(k) is not None
        ]
        check = dg.AssetCheckKey(dg.AssetKey("flights"), "monthly_volume")
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
    return partitions, materialized, record


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    prometheus_binary(), alertmanager_binary()
    from hybridops.observability.exporter import start_exporter, stop_exporter

    root = tmp_path_factory.mktemp("alert-scenarios")
    source, home = root / "source", root / "home"
    source.mkdir()
    for name in ("weather.csv", "planes.csv", "airlines.csv", "airports.csv"):
        shutil.copy(packaged_source_dir() / name, source / name)  # copied now: fresh files
    _flights(source)
    old = time.time() - SOURCE_AGE_S
    os.utime(source / "flights.csv", (old, old))

    started = time.monotonic()
    out = root / "summary.json"
    env = {**os.environ, "HYBRIDOPS_HOME": str(home), "HYBRIDOPS_SOURCE_DIR": str(source), "COLUMNS": "200"}
    result = subprocess.run(
        [EXE, "run", "--months", "2013-01:2013-02", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    record = Story(json.loads(out.read_text()))
    record.seconds["pipeline run"] = time.monotonic() - started
    record.downstream, record.unpartitioned_materialized, record.check_record = _downstream(home)

    settings = Settings(
        home=home,
        source_dir=source,
        monitoring=MonitoringSettings(
            exporter_sources=["dagster"], source_max_age_hours=SOURCE_MAX_AGE_HOURS
        ),
    )
    port = free_port()
    with (
        run_webhook() as webhook,
        run_alertmanager(root / "alertmanager", alertmanager_config_for_test(webhook.url)) as am,
        run_prometheus(
            root / "prometheus",
            {"hybridops-exporter": f"127.0.0.1:{port}"},
            rule_files_with_for(root / "rules", {STALE_SOURCE: "0s"}),
            alertmanager=am.address,
        ) as prom,
    ):
        server, _, collector = start_exporter(settings, "127.0.0.1", port)
        try:
            phase = time.monotonic()
            wanted = {("data-team-critical", BLOCKING), ("data-team", STALE_SOURCE)}
            wait_for(
                lambda: wanted <= {(n.receiver, n.alertname) for n in webhook.notifications()},
                60,
                f"notifications {sorted(wanted)}",
            )
            record.seconds["exporter start to both notifications"] = time.monotonic() - phase
            record.check_gauge = prom.values('hybridops_dagster_asset_check_passed{check="monthly_volume"}')
            record.notifications = webhook.notifications()
        finally:
            stop_exporter(server, collector)
    print(f"\nscenarios 3 and 7: { ({k: round(v, 1) for k, v in record.seconds.items()}) }")
    yield record


def test_the_volume_drop_blocks_the_batch_naming_the_file(story: Story) -> None:
    summary = story.summary
    assert summary["status"] == "blocked"
    # (WARN results of the real data's known defects, e.g. unknown destinations, block nothing.)
    failed = [c for c in summary["checks"] if c["evaluated"] and not c["passed"] and c["severity"] == "ERROR"]
    assert [(c["asset"], c["name"]) for c in failed] == [("flights", "monthly_volume")], failed
    problem = " ".join(summary["problems"])
    assert "monthly_volume" in problem and "flights.csv" in problem and "2013-02" in problem
    assert "under the 60% limit" in problem


def test_nothing_downstream_is_materialized(story: Story) -> None:
    # Features (every partition of the blocked range), training, scoring and monitoring: nothing.
    assert story.downstream and all(parts == [] for parts in story.downstream.values()), story.downstream
    assert story.unpartitioned_materialized == []


def test_the_check_result_is_in_the_event_log(story: Story) -> None:
    evaluation = story.check_record.evaluation
    assert evaluation is not None and evaluation.passed is False
    assert evaluation.blocking is True and evaluation.severity.value == "ERROR"
    assert "2013-02" in (evaluation.description or "")
    assert [float(v["value"][1]) for v in story.check_gauge] == [0.0]
    assert story.check_gauge[0]["metric"]["blocking"] == "true"


def test_the_alerts_reach_their_teams(story: Story) -> None:
    blocked = [n for n in story.notifications if n.alertname == BLOCKING and n.status == "firing"]
    assert blocked and blocked[0].receiver == "data-team-critical"
    assert {(a["labels"]["asset"], a["labels"]["check"]) for a in blocked[0].alerts} == {
        ("flights", "monthly_volume")
    }
    stale = [n for n in story.notifications if n.alertname == STALE_SOURCE and n.status == "firing"]
    assert stale and stale[0].receiver == "data-team"
    # Only the flights file is old; weather was written at the start of the test.
    assert [a["labels"]["source"] for a in stale[0].alerts] == ["flights"]
    description = stale[0].alerts[0]["annotations"]["description"]
    assert (
        description.startswith("The flights source file last changed 3d ")
        and "threshold 1d 0h 0m 0s" in description
    )
