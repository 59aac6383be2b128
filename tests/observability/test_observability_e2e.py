"""The exporter after a real pipeline run, and a real Prometheus scraping it and the inference service.

One module-scoped pipeline run (two months) feeds every test here. The Prometheus test executes every
dashboard panel query (each must return data) and every alert expression (each must parse).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import requests
from observability_support import (
    RULES_DIR,
    alert_rules,
    free_port,
    grafana_to_promql,
    panel_queries,
    prometheus_binary,
    run_inference_service,
    run_prometheus,
    wait_for,
)
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hybridops.features.store import load_definitions_module
from hybridops.observability.exporter import exporter_registry, start_exporter, stop_exporter
from hybridops.settings import MonitoringSettings, Settings

pytestmark = pytest.mark.e2e
MONTHS = ["2013-01", "2013-02"]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: object) -> Samples:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def pick(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (metric, labels), value in samples.items() if metric == name}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from dagster._daemon.types import DaemonHeartbeat

    from hybridops.orchestration.runner import run_pipeline

    saved = {key: os.environ.get(key) for key in ("DAGSTER_HOME", "HYBRIDOPS_HOME")}
    settings = Settings(home=tmp_path_factory.mktemp("observability") / "home")
    summary = run_pipeline(settings, MONTHS)
    assert summary.status == "success"
    # A daemon heartbeat (no daemon runs in tests) and a skew audit table (the audit asset is not built
    # yet): both read by the exporter like the real ones.
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    instance.add_daemon_heartbeat(
        DaemonHeartbeat(timestamp=time.time() - 42, daemon_type="SENSOR", daemon_id="test", errors=[])
    )
    instance.dispose()
    con = duckdb.connect(str(settings.warehouse_db))
    con.execute(
        "create table skew_audit as select * from (values ('origin_weather', false), "
        "('origin_weather', true), ('plane_profile', false)) t(feature_view, mismatch)"
    )
    con.close()
    yield settings
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def samples(settings: Settings) -> Samples:
    registry, collector = exporter_registry(settings)
    try:
        return scrape(registry)
    finally:
        collector.close()


def test_every_source_is_up(samples: Samples) -> None:
    up = {
        dict(labels)["source"]: value
        for labels, value in pick(samples, "hybridops_exporter_source_up").items()
    }
    assert up == {"dagster": 1.0, "warehouse": 1.0, "feast": 1.0, "mlflow": 1.0}


def test_runs_and_durations_match_the_dagster_instance(settings: Settings, samples: Samples) -> None:
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    try:
        records = instance.get_run_records()
        expected = Counter((r.dagster_run.job_name, r.dagster_run.status.value) for r in records)
        got = {
            (dict(labels)["dagster_job"], dict(labels)["status"]): value
            for labels, value in pick(samples, "hybridops_dagster_runs_total").items()
        }
        assert got == {key: float(n) for key, n in expected.items()}
        assert {"dimensions", "monthly_partition", "report", "training", "scoring"} <= {job for job, _ in got}
        counts = pick(samples, "hybridops_dagster_run_duration_seconds_count")
        assert sum(counts.values()) == len(records)
        latest: dict[str, tuple[float, float]] = {}
        for r in records:
            job = r.dagster_run.job_name
            if job not in latest or r.end_time > latest[job][0]:
                latest[job] = (r.end_time, r.end_time - r.start_time)
        durations = pick(samples, "hybridops_dagster_job_last_run_duration_seconds")
        for job, (_, duration) in latest.items():
            assert durations[frozenset({("dagster_job", job)})] == pytest.approx(duration)
        assert not pick(samples, "hybridops_dagster_runs_active")

        materialized = pick(samples, "hybridops_dagster_asset_last_materialization_timestamp_seconds")
        assert len(materialized) >= 15
        for labels, value in materialized.items():
            event = instance.get_latest_materialization_event(
                dg.AssetKey.from_user_string(dict(labels)["asset"])
            )
            assert event is not None and value == pytest.approx(event.timestamp)

        passed = pick(samples, "hybridops_dagster_asset_check_passed")
        keys = [
            dg.AssetCheckKey(dg.AssetKey.from_user_string(dict(lb)["asset"]), dict(lb)["check"])
            for lb in passed
        ]
        latest_checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        assert len(latest_checks) == len(passed) >= 30
        for labels, value in passed.items():
            d = dict(labels)
            record = latest_checks[dg.AssetCheckKey(dg.AssetKey.from_user_string(d["asset"]), d["check"])]
            assert record.evaluation is not None
            assert value == (1.0 if record.evaluation.passed else 0.0)
            assert d["check_severity"] == record.evaluation.severity.value
        assert any(dict(lb)["blocking"] == "true" for lb in passed)
        assert any(dict(lb)["check"] == "spc_rule1" for lb in passed)

        age = pick(samples, "hybridops_dagster_daemon_heartbeat_age_seconds")
        assert age[frozenset({("daemon", "SENSOR")})] == pytest.approx(42, abs=30)
    finally:
        instance.dispose()


def test_champion_matches_the_mlflow_registry(settings: Settings, samples: Samples) -> None:
    from hybridops.registry.models import champion

    current = champion(settings)
    assert current is not None
    model = frozenset({("model", current.name)})
    assert pick(samples, "hybridops_model_champion_version")[model] == float(current.version)
    info = pick(samples, "hybridops_model_champion_info")
    assert [dict(lb)["version"] for lb in info] == [current.version]
    metrics = {dict(lb)["metric"]: v for lb, v in pick(samples, "hybridops_model_champion_metric").items()}
    assert metrics == pytest.approx(current.metrics)
    assert "holdout_auc" in metrics


def test_warehouse_metrics_match_the_tables(settings: Settings, samples: Samples) -> None:
    con = duckdb.connect(str(settings.warehouse_db), read_only=True)
    try:
        quarantined = con.execute("select count(*) from quarantine").fetchone()[0]
        drift = dict(
            con.execute(
                "select feature, psi from drift_metrics where month_key = (select max(month_key) from drift_metrics)"
            ).fetchall()
        )
        violations = con.execute("select count(*) from spc_violations").fetchone()[0]
    finally:
        con.close()
    assert sum(pick(samples, "hybridops_quality_quarantined_rows").values()) == quarantined
    assert sum(pick(samples, "hybridops_spc_violations").values()) == violations > 0
    psi = {dict(lb)["feature"]: v for lb, v in pick(samples, "hybridops_model_feature_psi").items()}
    assert psi == pytest.approx(drift)
    skew = {
        dict(lb)["feature_view"]: v for lb, v in pick(samples, "hybridops_feast_skew_mismatch_ratio").items()
    }
    assert skew == {"origin_weather": 0.5, "plane_profile": 0.0}
    spc = pick(samples, "hybridops_spc_point")
    assert {dict(lb)["series"] for lb in spc} == {
        "value",
        "center",
        "ucl",
        "lcl",
        "ewma",
        "ewma_ucl",
        "ewma_lcl",
    }


def test_feature_views_materialization(settings: Settings, samples: Samples) -> None:
    until = pick(samples, "hybridops_feast_materialized_until_timestamp_seconds")
    assert len(until) == len(load_definitions_module().VIEW_FEATURES)  # one per view
    # Materialized up to the end of February 2013 (New York local month end, in UTC).
    assert all(1362096000 <= value <= 1362200000 for value in until.values())
    updated = pick(samples, "hybridops_feast_last_materialization_timestamp_seconds")
    assert all(time.time() - 3600 < value <= time.time() for value in updated.values())


def test_missing_stores_are_reported_not_raised(tmp_path: Path) -> None:
    registry, collector = exporter_registry(Settings(home=tmp_path / "nothing"))
    samples = scrape(registry)
    collector.close()
    up = {
        dict(labels)["source"]: value
        for labels, value in pick(samples, "hybridops_exporter_source_up").items()
    }
    assert up == {"dagster": 0.0, "warehouse": 0.0, "feast": 0.0, "mlflow": 0.0}
    assert not (tmp_path / "nothing").exists()  # reading never creates a store


def test_freshness_thresholds_come_from_settings(tmp_path: Path) -> None:
    monitoring = MonitoringSettings(
        freshness_assets=["flights"],
        freshness_max_age_hours=2,
        freshness_max_age_hours_by_asset={"on_time_report": 170},
        feature_view_max_age_hours=0.5,
    )
    registry, collector = exporter_registry(Settings(home=tmp_path / "nothing", monitoring=monitoring))
    samples = scrape(registry)
    collector.close()
    assert pick(samples, "hybridops_dagster_asset_freshness_threshold_seconds") == {
        frozenset({("asset", "flights")}): 7200.0,
        frozenset({("asset", "on_time_report")}): 612000.0,
    }
    assert pick(samples, "hybridops_feast_freshness_threshold_seconds") == {frozenset(): 1800.0}


def test_scrapes_are_fast(settings: Settings) -> None:
    registry, collector = exporter_registry(settings, cache_seconds=0)
    try:
        scrape(registry)  # first scrape: imports and full reads
        started = time.perf_counter()
        scrape(registry)
        assert time.perf_counter() - started < 1.0
    finally:
        collector.close()


# --- a real Prometheus --------------------------------------------------------------------------------
FLIGHT = {"carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", "tailnum": "N14228",
          "sched_dep": "2013-02-20T05:15:00"}  # fmt: skip


@pytest.fixture(scope="module")
def prometheus(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    prometheus_binary()  # skip (fail when strict) before starting anything
    from hybridops.orchestration.instance import instance_env

    exporter_port = free_port()
    server, _, collector = start_exporter(settings, "127.0.0.1", exporter_port)
    env = {**os.environ, **instance_env(settings)}
    stop = threading.Event()
    try:
        with run_inference_service(settings.home_dir, env) as url:

            def traffic() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    body = {"flights": [FLIGHT] * (1 + n % 7)} if n % 10 else {"flights": [{"bad": 1}]}
                    requests.post(f"{url}/predict", json=body, timeout=10)
                    time.sleep(0.05)

            thread = threading.Thread(target=traffic, daemon=True)
            thread.start()
            targets = {"hybridops-exporter": f"127.0.0.1:{exporter_port}", "hybridops-serving": url[7:]}
            workdir = tmp_path_factory.mktemp("prometheus")
            with run_prometheus(workdir, targets, sorted(RULES_DIR.glob("*.yaml"))) as prom:
                wait_for(
                    lambda: (
                        len(prom.values("up == 1")) == 2
                        and prom.values("hybridops_dagster_runs_total")
                        # check results are read after the runs (from the runs that finished): on a
                        # loaded machine a scrape can come between the two
                        and prom.values("hybridops_dagster_asset_check_passed")
                        and prom.values("rate(hybridops_serving_requests_total[15s]) > 0")
                    ),
                    120,
                    "both targets scraped with traffic",
                )
                time.sleep(3)
                yield prom
            stop.set()
            thread.join(15)
    finally:
        stop.set()
        stop_exporter(server, collector)


@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: f"{q.dashboard}:{q.panel}")
def test_every_panel_query_returns_data(prometheus: object, query: object) -> None:
    expr = grafana_to_promql(query.expr)  # type: ignore[attr-defined]
    result = prometheus.values(expr)  # type: ignore[attr-defined]
    assert result, f"no data for {expr!r}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_expression_parses(prometheus: object, rule: dict[str, object]) -> None:
    body = prometheus.query(str(rule["expr"]))  # type: ignore[attr-defined]
    assert body["status"] == "success", body


def test_prometheus_loaded_every_rule_healthy(prometheus: object) -> None:
    url = prometheus.url  # type: ignore[attr-defined]
    groups = requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(alert_rules())
    wait_for(
        lambda: all(
            r["health"] == "ok"
            for g in requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
            for r in g["rules"]
        ),
        10,
        "rules evaluated",
    )
