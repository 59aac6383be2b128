"""The exporter's ``feast`` source: materialization intervals and last update of each feature view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from hybridops.observability.exporter_values import PREFIX, ts
from hybridops.settings import Settings


def feast_metrics(settings: Settings, store: Any) -> list[Metric]:
    until = GaugeMetricFamily(
        f"{PREFIX}_feast_materialized_until_timestamp_seconds",
        "End of the latest materialization interval of each feature view (event time loaded online).",
        labels=["feature_view"],
    )
    updated = GaugeMetricFamily(
        f"{PREFIX}_feast_last_materialization_timestamp_seconds",
        "Unix time the feature view was last updated in the registry (each materialization updates it).",
        labels=["feature_view"],
    )
    intervals = GaugeMetricFamily(
        f"{PREFIX}_feast_materialization_intervals",
        "Materialization intervals recorded for each feature view.",
        labels=["feature_view"],
    )
    store.refresh_registry()
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        spans = list(view.materialization_intervals or [])
        intervals.add_metric([view.name], float(len(spans)))
        if spans:
            end = ts(max(span[1] for span in spans))
            if end is not None:
                until.add_metric([view.name], end)
            stamp = ts(view.last_updated_timestamp)
            if stamp is not None:
                updated.add_metric([view.name], stamp)
    return [until, updated, intervals]


def feast_registry_path(settings: Settings) -> Path | None:
    registry = settings.feast.registry
    if registry is None:
        return settings.feast_dir / "registry.db"
    if "://" in registry:
        return None  # a SQL registry: no file to check
    return Path(registry).expanduser()
