"""``monitoring``: the bundled Prometheus, Grafana and Alertmanager (with its receivers), or the objects for
an existing kube-prometheus-stack.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from hybridops.deploy.value_blocks import Image, Persistence, Resources, Service, _Values, resources


class PrometheusValues(_Values):
    image: Image = Field(default_factory=lambda: Image(repository="prom/prometheus", tag="v2.54.1"))
    resources: Resources = Field(default_factory=lambda: resources("200m", "512Mi", "1", "2Gi"))
    retention: str = "15d"
    persistence: Persistence = Field(default_factory=lambda: Persistence(size="10Gi"))
    service: Service = Field(default_factory=lambda: Service(port=9090))


class GrafanaValues(_Values):
    image: Image = Field(default_factory=lambda: Image(repository="grafana/grafana", tag="11.2.2"))
    resources: Resources = Field(default_factory=lambda: resources("100m", "256Mi", "500m", "512Mi"))
    admin_user: str = "admin"
    existing_secret: str | None = Field(None, description="Secret with the admin password.")
    existing_secret_password_key: str = "password"
    service: Service = Field(default_factory=lambda: Service(port=80))


class WebhookNotifier(_Values):
    """A webhook receiver (Alertmanager's JSON payload, POSTed)."""

    url: str = Field(pattern=r"^https?://\S+$", description="Endpoint the notifications are POSTed to.")
    send_resolved: bool = True


class SlackNotifier(_Values):
    api_url: str = Field(
        pattern=r"^https://\S+$",
        description="Slack incoming-webhook URL (a credential: it is rendered into the Alertmanager Secret).",
    )
    channel: str | None = Field(None, description="#channel or @user; default the webhook's own channel.")
    send_resolved: bool = True


class SecretKeyRef(_Values):
    name: str = Field(min_length=1, description="Secret in the release namespace.")
    key: str = Field("password", min_length=1)


class EmailNotifier(_Values):
    to: str = Field(min_length=3, description="Recipient address(es), comma-separated.")
    from_: str = Field(alias="from", min_length=3, description="Sender address.")
    smarthost: str = Field(pattern=r"^[^:\s]+:[0-9]+$", description="host:port of the SMTP relay.")
    auth_username: str | None = Field(None, description="SMTP login, when the relay needs one.")
    auth_password_secret: SecretKeyRef | None = Field(
        None, description="Secret holding the SMTP password (mounted as a file, never rendered)."
    )
    require_tls: bool = True
    send_resolved: bool = False


class AlertReceiver(_Values):
    """Where one receiver of the routing tree notifies; none set: alerts stay in the Alertmanager UI."""

    webhook: WebhookNotifier | None = None
    slack: SlackNotifier | None = None
    email: EmailNotifier | None = None


class AlertReceivers(_Values):
    """The receivers of infra/alertmanager/alertmanager.yml (routed by team and severity)."""

    default: AlertReceiver = Field(default_factory=AlertReceiver, description="Alerts without a known team.")
    data_team: AlertReceiver = Field(default_factory=AlertReceiver, description="team=data, warnings.")
    data_team_critical: AlertReceiver = Field(
        default_factory=AlertReceiver, description="team=data, severity=critical."
    )
    ml_team: AlertReceiver = Field(default_factory=AlertReceiver, description="team=ml, warnings.")
    ml_team_critical: AlertReceiver = Field(
        default_factory=AlertReceiver, description="team=ml, severity=critical."
    )


class AlertmanagerValues(_Values):
    """The bundled Alertmanager: infra/alertmanager/alertmanager.yml's routing tree, receivers from values."""

    enabled: bool = Field(True, description="Bundled mode only: Prometheus sends its alerts here.")
    image: Image = Field(default_factory=lambda: Image(repository="prom/alertmanager", tag="v0.27.0"))
    resources: Resources = Field(default_factory=lambda: resources("50m", "64Mi", "500m", "256Mi"))
    service: Service = Field(default_factory=lambda: Service(port=9093))
    retention: str = Field(
        "120h", pattern=r"^[0-9]+(ms|s|m|h)$", description="Silences and notification log."
    )
    external_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description="URL users reach Alertmanager at (links in notifications).",
    )
    receivers: AlertReceivers = Field(default_factory=AlertReceivers)
    existing_secret: str | None = Field(
        None,
        description="Secret with a complete alertmanager.yml, used instead of the one rendered from receivers.",
    )
    existing_secret_key: str = "alertmanager.yml"
    egress_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=list,
        description=(
            "Extra ports Alertmanager may connect to outside the release (NetworkPolicy); the ports of the "
            "receivers set above are always allowed. Set them when using existingSecret."
        ),
    )


class ExternalMonitoring(_Values):
    """Objects for an existing kube-prometheus-stack (the CRDs must be installed)."""

    service_monitors: bool = True
    pod_monitors: bool = True
    prometheus_rules: bool = True
    dashboards: bool = True
    labels: dict[str, str] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"},
        description="Extra labels the Prometheus operator selects monitors and rules by.",
    )
    namespace: str | None = Field(None, description="Namespace of the monitors; default the release's.")
    interval: str = Field("30s", pattern=r"^[0-9]+(ms|s|m|h)$")
    dashboard_label: str = "grafana_dashboard"
    dashboard_label_value: str = "1"
    prometheus_namespace: str = Field(
        "monitoring", description="Namespace of the Prometheus that scrapes (NetworkPolicy allow)."
    )


class MonitoringValues(_Values):
    enabled: bool = True
    mode: Literal["bundled", "external"] = Field(
        "bundled",
        description="bundled: Prometheus, Alertmanager and Grafana; external: monitors for an existing stack.",
    )
    prometheus: PrometheusValues = Field(default_factory=PrometheusValues)
    grafana: GrafanaValues = Field(default_factory=GrafanaValues)
    alertmanager: AlertmanagerValues = Field(default_factory=AlertmanagerValues)
    external: ExternalMonitoring = Field(default_factory=ExternalMonitoring)
