"""``feast``: the feature server and its authentication."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hybridops.deploy.value_blocks import (
    Autoscaling,
    Image,
    Resources,
    Scheduling,
    Service,
    _Values,
    platform_image,
    resources,
)


class ServiceAccountRef(_Values):
    """A ServiceAccount, possibly of another namespace (another team's application)."""

    name: str = Field(min_length=1, description="ServiceAccount name.")
    namespace: str | None = Field(None, description="Its namespace; default the release's.")


class FeastAuth(_Values):
    """Authentication of the Feast feature server: Feast's own ``auth:`` in its feature_store.yaml.

    Feast enforces the Permissions hybridops applies to the registry (read online: the reader role; push,
    write-to-online-store, materialize: the writer role) only when the server authenticates.
    """

    mode: Literal["kubernetes", "oidc", "none"] = Field(
        "kubernetes",
        description=(
            "kubernetes (default): a caller sends its ServiceAccount token as bearer; the server checks it with "
            "a TokenReview and takes its roles from the RoleBindings of the release namespace (readers, "
            "writers below); it gets its own ServiceAccount, a Role to list RoleBindings and "
            "system:auth-delegator. oidc: tokens of the identity provider at discoveryUrl, roles from their "
            "claims. none: NO authentication and no permission checks: anyone who reaches the Service (the "
            "release's run pods, inference, Prometheus, by NetworkPolicy) can read, push, write and "
            "materialize; choose it knowingly."
        ),
    )
    readers: list[ServiceAccountRef] = Field(
        default_factory=list,
        description=(
            "kubernetes mode: ServiceAccounts bound to the reader Role <fullname>-feast-reader (online reads: "
            "/get-online-features and friends), e.g. {name: recommender, namespace: team-a}."
        ),
    )
    writers: list[ServiceAccountRef] = Field(
        default_factory=list,
        description=(
            "kubernetes mode: ServiceAccounts bound to the writer Role <fullname>-feast-writer (reads, and "
            "/push, /write-to-online-store, /materialize). Nothing of the platform needs it: Dagster "
            "materializes to Redis directly."
        ),
    )
    discovery_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description=(
            "oidc mode (required there, refused otherwise): OIDC discovery URL "
            "(…/.well-known/openid-configuration) of the identity provider; every request to the feature "
            "server then needs a bearer token it signed (401 otherwise)."
        ),
    )
    client_id: str | None = Field(None, description="OIDC client id; its roles come from the token's claims.")
    audience: str | None = Field(None, description="Expected aud claim (verified when set).")
    issuer: str | None = Field(None, description="Expected iss claim (verified when set).")

    @model_validator(mode="after")
    def _oidc_needs_its_provider(self) -> FeastAuth:
        # A discoveryUrl left beside another mode would look like OIDC to a reader of the values while the
        # server does something else: refuse the combination instead of guessing.
        if self.mode == "oidc" and not self.discovery_url:
            raise ValueError("feast.auth.mode=oidc needs feast.auth.discoveryUrl")
        if self.mode != "oidc" and self.discovery_url:
            raise ValueError(
                f"feast.auth.discoveryUrl is set but feast.auth.mode is {self.mode}: set feast.auth.mode=oidc to use it"
            )
        return self


class FeastValues(_Values):
    enabled: bool = True
    image: Image = Field(default_factory=platform_image)
    replicas: int = Field(1, ge=1)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    resources: Resources = Field(default_factory=lambda: resources("200m", "512Mi", "1", "2Gi"))
    service: Service = Field(default_factory=lambda: Service(port=6566))
    project: str = "hybridops"
    database: str = Field("feast", description="Postgres database of the SQL registry.")
    auth: FeastAuth = Field(default_factory=FeastAuth)
    scheduling: Scheduling = Field(default_factory=Scheduling)
