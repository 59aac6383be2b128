"""The model alerts end to end: a month's report written by the monitoring code, the thresholds from
settings, the exporter, and a real Prometheus evaluating the project's rules.

The month is crafted with the platform's own functions: one feature the model relies on shifted beyond
anything its training months showed, one seasonal feature within its months' variation, a live AUC well
below the holdout AUC and a shifted score distribution. No pipeline run: the warehouse is built in a temp
home.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from observability_support import RULES_DIR, free_port, run_prometheus, wait_for
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hybridops.monitoring.drift import DriftReference, feature_drift, prediction_drift
from hybridops.monitoring.loop import record_report
from hybridops.monitoring.report import drift_report, write_drift
from hybridops.monitoring.thresholds import learn_thresholds
from hybridops.observability.exporter import exporter_registry, start_exporter, stop_exporter
from hybridops.settings import MonitoringSettings, Settings
from hybridops.warehouse.db import connect

FEATURES = ["origin_delay_rate", "temp", "humid"]
WEIGHTS = {"origin_delay_rate": 0.7, "temp": 0.2, "humid": 0.1}


def _settings(home: Path) -> Settings:
    monitoring = MonitoringSettings(
        exporter_sources=["warehouse"],
        max_auc_drop=0.03,
        prediction_psi_threshold=0.25,
        drifted_importance_threshold=0.5,
    )
    return Settings(home=home, monitoring=monitoring)


def _month(rng: np.random.Generator, month: str, index: int, delay_shift: float = 0.0) -> pd.DataFrame:
    n = 2000
    return pd.DataFrame(
        {
            "month_key": month,
            "origin_delay_rate": rng.beta(2, 8, n) + delay_shift,
            "temp": rng.normal(30 + 8 * index, 5, n),
            "humid": rng.normal(60, 10, n),
        }
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = _settings(tmp_path_factory.mktemp("home"))
    rng = np.random.default_rng(5)
    window = pd.concat([_month(rng, f"2013-0{i + 1}", i) for i in range(6)], ignore_index=True)
    current = _month(rng, "2013-09", 3, delay_shift=0.3)  # temp like April; delays far above
    config = settings.monitoring
    reference = DriftReference(window, FEATURES, config.bins)
    drift = feature_drift(reference, current, FEATURES, config, learn_thresholds(reference, window, config))
    scores = prediction_drift(rng.beta(2, 8, 4000), rng.beta(4, 6, 4000), config)
    live = {"auc": 0.684, "logloss": 0.5, "brier": 0.15, "rows": 2000, "note": None}
    report = drift_report(
        "2013-09", drift, scores, live, config, model_version=2, holdout_auc=0.736, weights=WEIGHTS
    )
    assert report.drifted_features == ["origin_delay_rate"] and report.retrain_recommended
    with connect(settings) as con:
        write_drift(con, report, "run-1")
        record_report(con, report, "run-1")
    return settings


def _samples(settings: Settings) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry, collector = exporter_registry(settings, cache_seconds=0)
    try:
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_exporter_exports_the_reports_figures_and_the_thresholds_from_settings(
    settings: Settings,
) -> None:
    samples = _samples(settings)
    version = frozenset({("model_version", "2")})
    assert samples[("hybridops_model_live_auc_max_drop", frozenset())] == 0.03
    assert samples[("hybridops_model_prediction_psi_threshold", frozenset())] == 0.25
    assert samples[("hybridops_model_drifted_importance_threshold", frozenset())] == 0.5
    assert samples[("hybridops_model_live_holdout_auc", version)] == 0.736
    assert samples[("hybridops_model_drifted_importance", version)] == pytest.approx(0.7)
    assert samples[("hybridops_model_prediction_psi", version)] > 0.25
    with connect(settings, read_only=True) as con:
        rows = con.execute("select feature, psi_threshold, importance from drift_metrics").fetchall()
    for feature, threshold, importance in rows:
        labels = frozenset({("feature", feature)})
        assert samples[("hybridops_model_feature_psi_threshold", labels)] == pytest.approx(threshold)
        assert samples[("hybridops_model_feature_importance", labels)] == pytest.approx(importance)
    thresholds = {feature: threshold for feature, threshold, _ in rows}
    assert thresholds["temp"] > 1.0 and thresholds["humid"] == 0.2  # a season learnt; a stable feature


def test_the_model_thresholds_go_with_the_warehouse_source(tmp_path: Path) -> None:
    names = {
        name for name, _ in _samples(Settings(home=tmp_path, monitoring={"exporter_sources": ["dagster"]}))
    }
    assert "hybridops_model_live_auc_max_drop" not in names


@pytest.fixture(scope="module")
def prometheus(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    port = free_port()
    server, _, collector = start_exporter(settings, "127.0.0.1", port)
    try:
        workdir = tmp_path_factory.mktemp("prometheus")
        targets = {"hybridops-exporter": f"127.0.0.1:{port}"}
        with run_prometheus(workdir, targets, sorted(RULES_DIR.glob("*.yaml"))) as prom:
            yield prom
    finally:
        stop_exporter(server, collector)


def test_prometheus_fires_the_model_alerts_from_the_report(prometheus: object) -> None:
    def firing() -> dict[str, list[dict[str, str]]]:
        alerts: dict[str, list[dict[str, str]]] = {}
        for item in prometheus.values('ALERTS{alertstate="firing",team="ml"}'):  # type: ignore[attr-defined]
            alerts.setdefault(item["metric"]["alertname"], []).append(item["metric"])
        return alerts

    expected = {
        "HybridopsModelLiveAucDegraded",
        "HybridopsPredictionDrift",
        "HybridopsModelDriftHarmful",
        "HybridopsFeatureDrift",
    }
    alerts = wait_for(lambda: (lambda a: a if set(a) >= expected else None)(firing()), 60, "model alerts")
    # only the feature beyond its learnt threshold: not the seasonal temp, whose PSI exceeds 0.2
    assert [a["feature"] for a in alerts["HybridopsFeatureDrift"]] == ["origin_delay_rate"]
    temp_psi = prometheus.values('hybridops_model_feature_psi{feature="temp"}')  # type: ignore[attr-defined]
    assert float(temp_psi[0]["value"][1]) > 0.2
    assert [a["model_version"] for a in alerts["HybridopsModelLiveAucDegraded"]] == ["2"]
