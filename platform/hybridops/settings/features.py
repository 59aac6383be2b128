"""Settings of the Feast feature store (``feast``): its registry, online and offline stores and roles."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from hybridops.settings.section import _Section


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
