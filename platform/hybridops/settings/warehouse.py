"""Settings of the warehouse (``warehouse``): an embedded DuckDB file or Iceberg tables in a SQL catalog."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from hybridops.settings.section import _Section


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
