"""``postgresql`` and ``redis``: the bundled data stores, or the external ones the release uses."""

from __future__ import annotations

from pydantic import Field

from hybridops.deploy.value_blocks import (
    ExternalService,
    Image,
    Persistence,
    Resources,
    Scheduling,
    _Values,
    resources,
)


class PostgresqlValues(_Values):
    enabled: bool = Field(True, description="Bundled StatefulSet; false to use postgresql.external.")
    image: Image = Field(default_factory=lambda: Image(repository="library/postgres", tag="16.4-bookworm"))
    username: str = Field(
        "hybridops",
        description=(
            "The superuser of the bundled server (used by its own container only: each component logs in "
            "as its own role, dagster, mlflow, feast, lakehouse), or the one login of an external server."
        ),
    )
    existing_secret: str | None = Field(
        None,
        description=(
            "Secret with the superuser's password (existingSecretPasswordKey) and one key <role>-password per "
            "component role (dagster-password, mlflow-password, feast-password, lakehouse-password with the "
            "lakehouse); default generated."
        ),
    )
    existing_secret_password_key: str = "password"
    resources: Resources = Field(default_factory=lambda: resources("250m", "512Mi", "1", "2Gi"))
    persistence: Persistence = Field(default_factory=lambda: Persistence(size="20Gi"))
    port: int = 5432
    external: ExternalService = Field(default_factory=lambda: ExternalService(port=5432))
    scheduling: Scheduling = Field(default_factory=Scheduling)


class RedisValues(_Values):
    enabled: bool = Field(True, description="Bundled StatefulSet; false to use redis.external.")
    image: Image = Field(default_factory=lambda: Image(repository="library/redis", tag="7.4.1-alpine3.20"))
    existing_secret: str | None = Field(None, description="Secret with the password; default generated.")
    existing_secret_password_key: str = "password"
    resources: Resources = Field(default_factory=lambda: resources("100m", "256Mi", "500m", "1Gi"))
    persistence: Persistence = Field(default_factory=lambda: Persistence(size="4Gi"))
    port: int = 6379
    external: ExternalService = Field(default_factory=lambda: ExternalService(port=6379))
    scheduling: Scheduling = Field(default_factory=Scheduling)
