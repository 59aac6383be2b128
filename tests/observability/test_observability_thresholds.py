"""The alert thresholds of the reliability alerts come from settings through the exporter."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hybridops.observability.exporter import exporter_registry
from hybridops.settings import MonitoringSettings, Settings


def _thresholds(tmp_path: Path, monitoring: MonitoringSettings) -> dict[tuple[str, tuple], float]:
    registry, collector = exporter_registry(Settings(home=tmp_path / "nothing", monitoring=monitoring))
    try:
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        # The reliability alerts' thresholds (freshness and the model alerts' have tests of their own).
        if sample.name.startswith(("hybridops_dagster_daemon", "hybridops_ingest", "hybridops_serving"))
        and "threshold" in sample.name
    }


def test_defaults(tmp_path: Path) -> None:
    assert _thresholds(tmp_path, MonitoringSettings()) == {
        ("hybridops_dagster_daemon_heartbeat_threshold_seconds", ()): 300.0,
        ("hybridops_ingest_source_age_threshold_seconds", (("source", "flights"),)): 26 * 3600.0,
        ("hybridops_ingest_source_age_threshold_seconds", (("source", "weather"),)): 26 * 3600.0,
        ("hybridops_serving_degraded_response_ratio_threshold", ()): 0.05,
    }
    assert not (tmp_path / "nothing").exists()  # reading never creates a store


def test_settings_change_the_thresholds(tmp_path: Path) -> None:
    monitoring = MonitoringSettings(
        daemon_heartbeat_max_age_seconds=20,
        source_max_age_hours={"weather": 0.5},
        max_degraded_response_ratio=0.2,
    )
    assert _thresholds(tmp_path, monitoring) == {
        ("hybridops_dagster_daemon_heartbeat_threshold_seconds", ()): 20.0,
        ("hybridops_ingest_source_age_threshold_seconds", (("source", "weather"),)): 1800.0,
        ("hybridops_serving_degraded_response_ratio_threshold", ()): 0.2,
    }


def test_the_dagster_thresholds_go_with_their_source(tmp_path: Path) -> None:
    # The heartbeat and source-age alerts compare metrics of the dagster source: without it, no threshold.
    assert _thresholds(tmp_path, MonitoringSettings(exporter_sources=["warehouse"])) == {
        ("hybridops_serving_degraded_response_ratio_threshold", ()): 0.05,
    }
    assert _thresholds(tmp_path, MonitoringSettings(exporter_sources=[])) == {}
