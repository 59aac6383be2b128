"""Static checks of the alert rules, their unit tests, the Alertmanager config and the dashboards."""

from __future__ import annotations

import re
import subprocess

import pytest
from observability_support import (
    ALERTMANAGER_CONFIG,
    REPO,
    RULE_TESTS_DIR,
    RULES_DIR,
    alert_rules,
    dashboards,
    panel_queries,
)
from tools import require_tool

REQUIRED_ALERTS = {
    "HybridopsPipelineFailing",
    "HybridopsPipelineStuck",
    "HybridopsDaemonHeartbeatStale",
    "HybridopsDataFreshnessBreached",
    "HybridopsBlockingCheckFailed",
    "HybridopsSpcRule1Violation",
    "HybridopsFeatureDrift",
    "HybridopsServingErrorRatioHigh",
    "HybridopsServingLatencyHigh",
    "HybridopsModelNotReloaded",
}


def test_promtool_check_rules() -> None:
    files = sorted(RULES_DIR.glob("*.yaml"))
    result = subprocess.run(
        [require_tool("promtool"), "check", "rules", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    files = sorted(RULE_TESTS_DIR.glob("*.yaml"))
    assert files
    result = subprocess.run(
        [require_tool("promtool"), "test", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=RULE_TESTS_DIR,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_labels_annotations_and_a_runbook_section() -> None:
    runbook = (REPO / "docs" / "runbooks.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("## ")
    }
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["labels"]["team"] in ("data", "ml"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/runbooks.md" and anchor in anchors, (rule["alert"], anchor)


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    import yaml

    fired: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS_DIR.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fired, names - fired
    assert names <= silent, names - silent


def test_rule_unit_tests_use_the_default_freshness_thresholds() -> None:
    # infra/prometheus/tests feeds the thresholds the exporter exports with default settings (26h).
    from hybridops.settings import MonitoringSettings

    defaults = MonitoringSettings()
    assert defaults.freshness_thresholds_hours() == dict.fromkeys(
        ["flights", "weather", "fct_flights", "on_time_report", "spc_daily_metrics"], 26.0
    )
    assert defaults.feature_view_max_age_hours == 26.0
    unit_tests = (RULE_TESTS_DIR / "hybridops_test.yaml").read_text()
    assert "hybridops_dagster_asset_freshness_threshold_seconds" in unit_tests
    assert "93600x" in unit_tests  # 26h in seconds


def test_amtool_check_config() -> None:
    result = subprocess.run(
        [require_tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["team=data", "severity=critical"], "data-team-critical"),
        (["team=data", "severity=warning"], "data-team"),
        (["team=ml", "severity=critical"], "ml-team-critical"),
        (["team=ml", "severity=warning"], "ml-team"),
        (["severity=warning"], "default"),
    ],
)
def test_alertmanager_routes_by_team_and_severity(labels: list[str], receiver: str) -> None:
    result = subprocess.run(
        [require_tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels],
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == receiver, result.stdout + result.stderr


def test_dashboards_have_unique_uids_a_datasource_variable_and_real_metrics() -> None:
    boards = dashboards()
    assert len(boards) == 5
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
    assert all("hybridops_" in q.expr for q in panel_queries())
