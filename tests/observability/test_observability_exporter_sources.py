"""``monitoring.exporter_sources``: the exporter reads only the enabled sources.

A disabled source is proven unread with a store that fails when read (a corrupt file where the store
should be): enabled, the same store is reported down with a warning; disabled, the exporter exports no
series of it (no ``hybridops_exporter_source_up`` either), logs nothing about it and leaves the file as it
was. No pipeline run: the stores are built in a temp home.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import requests
from observability_support import free_port
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from hybridops.observability import exporter
from hybridops.observability.exporter import exporter_registry, start_exporter, stop_exporter
from hybridops.settings import EXPORTER_SOURCES, ExporterSource, MonitoringSettings, Settings

LOGGER = exporter.log.name
CORRUPT = b"not a store: reading this file fails\n" * 32
Sample = tuple[str, dict[str, str], float]


def _scrape(settings: Settings) -> list[Sample]:
    registry, collector = exporter_registry(settings, cache_seconds=0)
    try:
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _by_source(samples: list[Sample], name: str) -> dict[str, float]:
    return {labels["source"]: value for metric, labels, value in samples if metric == name}


def _corrupt_store(settings: Settings, source: ExporterSource) -> Path:
    """Put a file that fails when read where ``source``'s store is; returns it."""
    path = {
        "dagster": settings.dagster_home / "dagster.yaml",
        "warehouse": settings.warehouse_db,
        "feast": settings.feast_dir / "registry.db",
        "mlflow": settings.mlflow_dir / "mlflow.db",
    }[source]
    path.parent.mkdir(parents=True, exist_ok=True)
    if (
        source == "dagster"
    ):  # a dagster.yaml is YAML first: an invalid storage fails DagsterInstance.from_config
        path.write_text("storage: [not, a, storage, config]\n")
    else:
        path.write_bytes(CORRUPT)
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _exporter_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the exporter's logger, debug included (a disabled source must log nothing at all)."""
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        yield caplog


def test_the_setting_names_every_source_the_exporter_has() -> None:
    assert EXPORTER_SOURCES == typing.get_args(ExporterSource) == exporter.SOURCES
    assert MonitoringSettings().exporter_sources == ["dagster", "warehouse", "feast", "mlflow"]


@pytest.mark.parametrize("source", EXPORTER_SOURCES)
def test_a_disabled_source_is_not_read_and_exports_nothing(
    source: ExporterSource, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    store = _corrupt_store(settings, source)  # every other store is missing (fails fast when read)
    others = [s for s in EXPORTER_SOURCES if s != source]
    files = _tree(home)

    # Enabled, the store fails when read: reported down, with a warning naming it.
    only = settings.model_copy(update={"monitoring": MonitoringSettings(exporter_sources=[source])})
    samples = _scrape(only)
    assert _by_source(samples, "hybridops_exporter_source_up") == {source: 0.0}
    assert any(m.startswith(f"cannot read {source}:") for m in _exporter_records(debug_log))

    # Disabled: never opened, no series (not even source_up or the read duration), not one log record.
    debug_log.clear()
    without = settings.model_copy(update={"monitoring": MonitoringSettings(exporter_sources=others)})
    samples = _scrape(without)
    assert _by_source(samples, "hybridops_exporter_source_up") == dict.fromkeys(others, 0.0)
    assert set(_by_source(samples, "hybridops_exporter_source_read_duration_seconds")) == set(others)
    assert not [s for s in samples if s[1].get("source") == source]
    assert not [m for m in _exporter_records(debug_log) if source in m]
    assert _tree(home) == files and store.read_bytes() == files[str(store.relative_to(home))]


def test_only_the_enabled_sources_are_read_and_exported(
    tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    """The DataOps deployment: Dagster and the warehouse readable, Feast and MLflow disabled (and failing
    if read). The scrape is clean: both sources up, their series exported, no warning."""
    settings = Settings(
        home=tmp_path / "home", monitoring=MonitoringSettings(exporter_sources=["dagster", "warehouse"])
    )
    settings.dagster_home.mkdir(parents=True)
    (settings.dagster_home / "dagster.yaml").write_text("")  # a local instance (SQLite storage), no runs yet
    settings.warehouse_dir.mkdir(parents=True)
    con = duckdb.connect(str(settings.warehouse_db))
    con.execute("create table quarantine as select 'flights' as table_name, 'dep_delay_range' as check_name")
    con.close()
    _corrupt_store(settings, "feast")
    _corrupt_store(settings, "mlflow")

    samples = _scrape(settings)
    assert _by_source(samples, "hybridops_exporter_source_up") == {"dagster": 1.0, "warehouse": 1.0}
    quarantined = [v for name, labels, v in samples if name == "hybridops_quality_quarantined_rows"]
    assert quarantined == [1.0]
    names = {name for name, _, _ in samples}
    assert "hybridops_dagster_asset_freshness_threshold_seconds" in names
    # Nothing of the disabled sources, the Feast freshness threshold included (it goes with its source).
    assert not {n for n in names if n.startswith(("hybridops_feast_", "hybridops_model_champion"))}
    assert not [r for r in debug_log.records if r.name == LOGGER and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("sources", "thresholds"),
    [
        (["dagster", "warehouse", "feast", "mlflow"], {"dagster", "feast"}),
        (["dagster"], {"dagster"}),
        (["feast"], {"feast"}),
        (["warehouse", "mlflow"], set()),
        ([], set()),
    ],
)
def test_freshness_thresholds_go_with_their_source(
    sources: list[ExporterSource], thresholds: set[str], tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "nothing", monitoring=MonitoringSettings(exporter_sources=sources))
    samples = _scrape(settings)
    exported = {name.split("_")[1] for name, _, _ in samples if name.endswith("_freshness_threshold_seconds")}
    assert exported == thresholds
    assert set(_by_source(samples, "hybridops_exporter_source_up")) == set(sources)
    if not sources:
        assert samples == []  # nothing enabled: an empty scrape
    assert not (tmp_path / "nothing").exists()


def test_the_served_metrics_follow_the_setting(tmp_path: Path) -> None:
    """Through ``start_exporter`` (its warm-up and its HTTP server), settings read from the environment the
    way the chart passes them (the ``monitoring`` section as JSON in ``HYBRIDOPS_MONITORING``)."""
    environ = {"HYBRIDOPS_MONITORING": json.dumps({"exporter_sources": ["warehouse"]})}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in environ.items():
            mp.setenv(key, value)
        settings = Settings(home=tmp_path / "home")
    assert settings.monitoring.exporter_sources == ["warehouse"]
    for source in ("dagster", "feast", "mlflow"):
        _corrupt_store(settings, source)
    port = free_port()
    server, _, collector = start_exporter(settings, port=port)
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        stop_exporter(server, collector)
    up = {
        sample.labels["source"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hybridops_exporter_source_up"
    }
    assert up == {"warehouse": 0.0}  # enabled and missing: reported; the corrupt stores: not even tried


def test_the_setting_from_the_environment_and_its_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDOPS_MONITORING__EXPORTER_SOURCES", '["dagster", "warehouse"]')
    assert Settings().monitoring.exporter_sources == ["dagster", "warehouse"]
    with pytest.raises(ValidationError, match="listed more than once: dagster"):
        MonitoringSettings(exporter_sources=["dagster", "warehouse", "dagster"])
    with pytest.raises(ValidationError, match="'dagster', 'warehouse', 'feast' or 'mlflow'"):
        MonitoringSettings(exporter_sources=["skew"])  # type: ignore[list-item]
    schema = MonitoringSettings.model_json_schema()["properties"]["exporter_sources"]
    assert schema["uniqueItems"] is True
    assert schema["items"]["enum"] == list(EXPORTER_SOURCES)


_HOLD_AND_INSERT = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("insert into quarantine values ('weather', 'range')")
print("held", flush=True)
sys.stdin.read()
con.close()
"""


def test_a_warehouse_held_by_a_pipeline_run_keeps_its_last_values_marked_stale(tmp_path: Path) -> None:
    """While ``hybridops run`` keeps the warehouse open (DuckDB: one writing process), a scrape cannot read
    it: the last values stay exported with source_up 0, so alerts on them do not flap; then they update."""
    from hybridops.warehouse.db import connect

    settings = Settings(home=tmp_path / "home", monitoring=MonitoringSettings(exporter_sources=["warehouse"]))
    settings.warehouse_dir.mkdir(parents=True)
    with connect(settings.warehouse_db) as con:
        con.execute("create table quarantine as select 'flights' as table_name, 'range' as check_name")
    registry, collector = exporter_registry(settings, cache_seconds=0)

    def scrape() -> tuple[float, list[float]]:
        samples = [
            (s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for s in family.samples
        ]
        rows = [v for name, _, v in samples if name == "hybridops_quality_quarantined_rows"]
        return _by_source(samples, "hybridops_exporter_source_up")["warehouse"], rows

    try:
        assert scrape() == (1.0, [1.0])
        run = subprocess.Popen(  # a pipeline run in another process, holding the warehouse open
            [sys.executable, "-c", _HOLD_AND_INSERT, str(settings.warehouse_db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None and run.stdout.readline().strip() == "held"
        try:
            assert scrape() == (0.0, [1.0])  # locked by the "run": stale, not gone
        finally:
            run.communicate("", timeout=60)
        assert scrape() == (1.0, [1.0, 1.0])  # flights and weather, read again
    finally:
        collector.close()
