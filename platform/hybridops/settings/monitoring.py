"""Settings of drift and performance monitoring, the retraining loop, freshness alerts and the metrics
exporter (``monitoring``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from hybridops.settings.section import _Section

ExporterSource = Literal["dagster", "warehouse", "feast", "mlflow"]
"""A store the metrics exporter reads (``hybridops.observability.exporter``); the skew audit is a warehouse
table, read with the warehouse."""
EXPORTER_SOURCES: tuple[ExporterSource, ...] = ("dagster", "warehouse", "feast", "mlflow")


class MonitoringSettings(_Section):
    """Drift and performance monitoring, and the retraining loop."""

    psi_threshold: float = Field(
        0.2, gt=0, description="PSI above this flags a feature as drifted (the floor of a learned threshold)."
    )
    ks_threshold: float = Field(
        0.1,
        gt=0,
        le=1,
        description="KS statistic above this flags a feature as drifted (the floor of a learned threshold).",
    )
    drift_thresholds: Literal["learned", "fixed"] = Field(
        "learned",
        description=(
            "learned: each feature's PSI and KS thresholds are learnt from the training window's own "
            "month-to-month variation (learned_threshold_factor times the largest drift of a training month "
            "against the whole window, never below psi_threshold / ks_threshold), so seasonal features are "
            "not flagged for their season; fixed: psi_threshold and ks_threshold for every feature."
        ),
    )
    learned_threshold_factor: float = Field(
        2.0,
        ge=1,
        description="Margin over the largest month-to-month drift of the training window (drift_thresholds: learned).",
    )
    drifted_importance_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "Retrain (and alert) when the drifted features carry at least this share of the champion's "
            "LightGBM gain importance."
        ),
    )
    bins: int = Field(10, ge=2, description="Quantile bins of the PSI computation (from the reference).")
    max_auc_drop: float = Field(
        0.02,
        ge=0,
        le=1,
        description=(
            "Retrain (and alert) when a scored month's ROC AUC on its known outcomes is more than this "
            "below the champion's holdout AUC."
        ),
    )
    min_live_auc: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Retrain when the ROC AUC on a scored month's known outcomes falls below this.",
    )
    prediction_psi_threshold: float = Field(
        0.2,
        gt=0,
        description="PSI of the score distribution against the holdout scores above which predictions drifted.",
    )
    spc_trigger_metrics: list[str] = Field(
        default_factory=list,
        description=(
            "SPC metrics whose ERROR-level violation in a month the champion scored requests retraining. "
            "None by default: an SPC alarm describes the operation (a storm), not harm to the model, which "
            "the live AUC and the importance-weighted drift measure."
        ),
    )
    retrain_cooldown_hours: float = Field(
        24.0, ge=0, description="Minimum time between two retraining runs requested by the loop."
    )
    # The freshness alerts compare against these through the exporter (threshold gauges), so changing a
    # value here or in the chart changes the alert without editing the rules.
    freshness_assets: list[str] = Field(
        default_factory=lambda: ["flights", "weather", "fct_flights", "on_time_report", "spc_daily_metrics"],
        description="Dagster assets watched by the freshness alert (HybridopsDataFreshnessBreached).",
    )
    freshness_max_age_hours: float = Field(
        26.0,
        gt=0,
        description=(
            "A watched asset not materialized for this many hours is stale (daily batches: a day plus slack)."
        ),
    )
    freshness_max_age_hours_by_asset: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description=(
            "Per-asset exceptions to freshness_max_age_hours, in hours; an asset listed here is watched "
            "even when it is not in freshness_assets."
        ),
    )
    feature_view_max_age_hours: float = Field(
        26.0,
        gt=0,
        description=(
            "A Feast feature view not materialized for this many hours is stale (HybridopsFeatureViewStale)."
        ),
    )
    daemon_heartbeat_max_age_seconds: float = Field(
        300.0,
        gt=0,
        description=(
            "A Dagster daemon whose last heartbeat is older than this is stale "
            "(HybridopsDaemonHeartbeatStale); Dagster's own liveness tolerance is 1800 s."
        ),
    )
    source_max_age_hours: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {"flights": 26.0, "weather": 26.0},
        description=(
            "Source files watched for new data, with the hours after which a file whose modification "
            "time has not moved (as the latest ingest saw it) is stale (HybridopsSourceStale)."
        ),
    )
    max_degraded_response_ratio: float = Field(
        0.05,
        gt=0,
        le=1,
        description=(
            "Share of /predict answers flagged degraded (default features) above which "
            "HybridopsServingDegradedRatioHigh fires."
        ),
    )
    exporter_sources: list[ExporterSource] = Field(
        default_factory=lambda: list(EXPORTER_SOURCES),
        json_schema_extra={"uniqueItems": True},
        description=(
            "Stores the metrics exporter reads: dagster, warehouse (the skew audit included), feast, mlflow. "
            "A source left out is never opened and exports nothing, not even "
            "hybridops_exporter_source_up, so a deployment without MLflow or Feast does not report them down."
        ),
    )

    @field_validator("exporter_sources")
    @classmethod
    def _distinct_sources(cls, sources: list[ExporterSource]) -> list[ExporterSource]:
        repeated = sorted({source for source in sources if sources.count(source) > 1})
        if repeated:
            raise ValueError(f"exporter source listed more than once: {', '.join(repeated)}")
        return sources

    def freshness_thresholds_hours(self) -> dict[str, float]:
        """Every watched asset with its freshness threshold in hours."""
        thresholds = dict.fromkeys(self.freshness_assets, self.freshness_max_age_hours)
        thresholds.update(self.freshness_max_age_hours_by_asset)
        return thresholds
