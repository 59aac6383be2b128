"""Alert thresholds exported from settings, so the rules compare against settings (and chart values).

Each alert rule matches its metric against a gauge the exporter (:mod:`hybridops.observability.exporter`)
serves from ``settings.monitoring``, so changing a value changes the alert without editing the rule files.
:func:`source_thresholds` gives the freshness and model thresholds, each with its source;
:func:`alert_thresholds` these:

* ``hybridops_dagster_daemon_heartbeat_threshold_seconds``: HybridopsDaemonHeartbeatStale
  (``monitoring.daemon_heartbeat_max_age_seconds``), with the ``dagster`` source;
* ``hybridops_ingest_source_age_threshold_seconds{source}``: HybridopsSourceStale
  (``monitoring.source_max_age_hours``), with the ``dagster`` source (the file times come from the
  ingest materializations);
* ``hybridops_serving_degraded_response_ratio_threshold``: HybridopsServingDegradedRatioHigh
  (``monitoring.max_degraded_response_ratio``), exported whenever the exporter reads any source (the
  inference service's own metrics are scraped from the service itself).
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from hybridops.observability.exporter_values import PREFIX
from hybridops.settings import Settings


def alert_thresholds(settings: Settings) -> list[Metric]:
    monitoring = settings.monitoring
    out: list[Metric] = []
    if "dagster" in monitoring.exporter_sources:
        heartbeat = GaugeMetricFamily(
            f"{PREFIX}_dagster_daemon_heartbeat_threshold_seconds",
            "Age of a Dagster daemon's last heartbeat above which it is stale "
            "(monitoring.daemon_heartbeat_max_age_seconds).",
        )
        heartbeat.add_metric([], monitoring.daemon_heartbeat_max_age_seconds)
        sources = GaugeMetricFamily(
            f"{PREFIX}_ingest_source_age_threshold_seconds",
            "Age of a source file's modification time above which the source is stale: no new data "
            "(monitoring.source_max_age_hours).",
            labels=["source"],
        )
        for source, hours in sorted(monitoring.source_max_age_hours.items()):
            sources.add_metric([source], hours * 3600.0)
        out += [heartbeat, sources]
    if not monitoring.exporter_sources:
        return out  # an exporter reading nothing exports nothing
    degraded = GaugeMetricFamily(
        f"{PREFIX}_serving_degraded_response_ratio_threshold",
        "Share of /predict answers flagged degraded above which the degraded-ratio alert fires "
        "(monitoring.max_degraded_response_ratio).",
    )
    degraded.add_metric([], monitoring.max_degraded_response_ratio)
    out.append(degraded)
    return out


def source_thresholds(settings: Settings) -> list[Metric]:
    """The freshness thresholds the alert rules compare against (``on (asset)`` matching), each with its
    source: the assets' with dagster, the feature views' with feast."""
    monitoring = settings.monitoring
    sources = set(monitoring.exporter_sources)
    assets = GaugeMetricFamily(
        f"{PREFIX}_dagster_asset_freshness_threshold_seconds",
        "Age of the latest materialization above which a watched asset is stale "
        "(monitoring.freshness_max_age_hours, freshness_max_age_hours_by_asset).",
        labels=["asset"],
    )
    for asset, hours in sorted(monitoring.freshness_thresholds_hours().items()):
        assets.add_metric([asset], hours * 3600.0)
    views = GaugeMetricFamily(
        f"{PREFIX}_feast_freshness_threshold_seconds",
        "Age of the latest materialization above which a feature view is stale "
        "(monitoring.feature_view_max_age_hours).",
    )
    views.add_metric([], monitoring.feature_view_max_age_hours * 3600.0)
    model: list[Metric] = []
    for name, value, text in (
        ("model_live_auc_max_drop", monitoring.max_auc_drop, "monitoring.max_auc_drop"),
        (
            "model_prediction_psi_threshold",
            monitoring.prediction_psi_threshold,
            "monitoring.prediction_psi_threshold",
        ),
        (
            "model_drifted_importance_threshold",
            monitoring.drifted_importance_threshold,
            "monitoring.drifted_importance_threshold",
        ),
    ):
        family = GaugeMetricFamily(f"{PREFIX}_{name}", f"The model alerts' threshold {text}.")
        family.add_metric([], float(value))
        model.append(family)
    # The model thresholds go with the warehouse, where the figures they judge come from.
    return [
        family
        for source, families in (("dagster", [assets]), ("feast", [views]), ("warehouse", model))
        if source in sources
        for family in families
    ]
