"""``uiProxy``: oauth2-proxy in front of the release's web UIs (opt-in).

The read-write Dagster webserver launches and terminates runs and has no login of its own; Grafana and
MLflow have their own. With ``uiProxy.enabled`` the chart renders one oauth2-proxy Deployment and Service
per fronted UI (``<fullname>-ui-proxy-<ui>``), each signing users in at an OpenID Connect identity
provider before it forwards anything to that UI's in-cluster Service, and, optionally, an Ingress with
one host per UI. One proxy per UI because oauth2-proxy routes upstreams by path only, and these UIs
expect to be served at ``/``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from hybridops.deploy.value_blocks import Image, Resources, Scheduling, Service, _Values, resources

OAUTH2_PROXY_TAG = "v7.15.6"


class UiProxyOidc(_Values):
    """The identity provider (oauth2-proxy ``--provider=oidc``)."""

    issuer_url: str | None = Field(
        None,
        pattern=r"^https://\S+$",
        description=(
            "OIDC issuer URL (required when enabled); oauth2-proxy reads <issuer>/.well-known/openid-configuration "
            "at start and refuses to start when it cannot."
        ),
    )
    client_id: str | None = Field(None, min_length=1, description="OAuth client id (required when enabled).")
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        min_length=1,
        description="Scopes requested at sign-in (joined by spaces into --scope); openid is needed.",
    )
    email_domains: list[str] = Field(
        default_factory=list,
        description=(
            "Email domains whose users may pass (--email-domain); required when enabled: ['*'] admits "
            "anyone the identity provider signs in, then narrow it with allowedGroups."
        ),
    )
    allowed_groups: list[str] = Field(
        default_factory=list,
        description="Groups (in the groupsClaim of the ID token) whose members may pass (--allowed-group).",
    )
    groups_claim: str = Field("groups", min_length=1, description="ID token claim holding the groups.")


class UiProxyUi(_Values):
    """One fronted UI: whether the proxy fronts it, and the host users reach it at."""

    enabled: bool = Field(description="Render a proxy for this UI.")
    host: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$",
        description=(
            "Public host name (no scheme): the Ingress rule's host and the redirect URL "
            "https://<host>/oauth2/callback to register at the identity provider; required with the Ingress. "
            "Unset: the proxy derives the redirect URL from each request's (forwarded) host."
        ),
    )
    tls_secret: str | None = Field(
        None, description="Secret with the TLS certificate of host (the Ingress's tls); unset: none."
    )


class UiProxyUis(_Values):
    """Which UIs get a proxy. A UI the release does not deploy cannot be fronted (the render fails)."""

    dagster: UiProxyUi = Field(
        default_factory=lambda: UiProxyUi(enabled=True),
        description="The read-write Dagster webserver (no login of its own).",
    )
    grafana: UiProxyUi = Field(
        default_factory=lambda: UiProxyUi(enabled=False),
        description="The bundled Grafana (monitoring.mode bundled); its own login stays in place behind the proxy.",
    )
    mlflow: UiProxyUi = Field(
        default_factory=lambda: UiProxyUi(enabled=False),
        description=(
            "The MLflow UI; its basic-auth login stays in place behind the proxy. Its host is added to MLflow's "
            "allowed hosts and https://<host> to its CORS origins (MLflow refuses other Hosts and cross-origin writes)."
        ),
    )


class UiProxyIngress(_Values):
    enabled: bool = Field(False, description="Render an Ingress with a rule per fronted UI's host.")
    class_name: str | None = Field(None, description="IngressClass; default the cluster's default class.")
    annotations: dict[str, str] = Field(default_factory=dict)


class UiProxyValues(_Values):
    enabled: bool = Field(
        False,
        description=(
            "Render oauth2-proxy (OIDC sign-in) in front of the UIs chosen in uis; the read-write Dagster "
            "webserver then accepts its proxy's pods besides networkPolicy.dagsterWebserverFrom."
        ),
    )
    image: Image = Field(
        default_factory=lambda: Image(repository="oauth2-proxy/oauth2-proxy", tag=OAUTH2_PROXY_TAG),
        description=(
            "oauth2-proxy v7. The project publishes its image on its own registry, not the global default one: "
            "set image.registry to it (see docs/deploy.md)."
        ),
    )
    replicas: int = Field(1, ge=1, description="Replicas of each UI's proxy (sessions live in the cookie).")
    resources: Resources = Field(default_factory=lambda: resources("10m", "32Mi", "200m", "128Mi"))
    port: int = Field(4180, ge=1024, le=65535, description="Port the proxy listens on in the pod.")
    service: Service = Field(default_factory=lambda: Service(port=80))
    oidc: UiProxyOidc = Field(default_factory=UiProxyOidc)
    existing_secret: str | None = Field(
        None,
        min_length=1,
        description=(
            "Secret with the OAuth client secret and the cookie secret (required when enabled; the chart "
            "never generates them). Cookie secret: 16, 24 or 32 bytes, e.g. "
            "python -c 'import os,base64; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'."
        ),
    )
    client_secret_key: str = Field("client-secret", min_length=1, description="Key of the client secret.")
    cookie_secret_key: str = Field("cookie-secret", min_length=1, description="Key of the cookie secret.")
    cookie_name: str = Field(
        "__Host-hybridops-ui",
        min_length=1,
        description="Session cookie (Secure, HttpOnly, SameSite=lax; the __Host- prefix pins it to the UI's host).",
    )
    cookie_expire: str = Field(
        "12h", pattern=r"^([0-9]+(h|m|s))+$", description="Sessions end this long after sign-in."
    )
    uis: UiProxyUis = Field(default_factory=UiProxyUis)
    ingress: UiProxyIngress = Field(default_factory=UiProxyIngress)
    egress_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: [443],
        description="Ports the proxies may connect to outside the release: the identity provider's (NetworkPolicy).",
    )
    extra_args: list[str] = Field(
        default_factory=list, description="Further oauth2-proxy flags, e.g. --whitelist-domain=.example.com."
    )
    scheduling: Scheduling = Field(default_factory=Scheduling)

    @model_validator(mode="after")
    def _enabled_needs_its_provider(self) -> UiProxyValues:
        # The render fails on the same conditions (hybridops.uiProxy.validate); this names them to a Python caller.
        if not self.enabled:
            return self
        missing = [
            name
            for name, value in (
                ("uiProxy.existingSecret", self.existing_secret),
                ("uiProxy.oidc.issuerUrl", self.oidc.issuer_url),
                ("uiProxy.oidc.clientId", self.oidc.client_id),
                ("uiProxy.oidc.emailDomains", self.oidc.email_domains),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"uiProxy.enabled=true needs {', '.join(missing)}")
        return self
