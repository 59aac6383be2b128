"""Scenario 17 (issue 14): oauth2-proxy in front of the UIs (``uiProxy``), rendered by the real Helm engine and
asserted field by field; its NetworkPolicies evaluated by ``hybridops.deploy.reachability``.

oauth2-proxy is not run here (a Go program in a container image; this machine has neither a Go toolchain nor
a container engine): what is proved is what a cluster would be given. Off (the default) the chart renders
exactly what it rendered before; on, each fronted UI gets a proxy that signs users in at the OIDC provider,
takes its secrets only from the named Secret, runs as locked down as every other container, and is the only
new way in: the read-write Dagster webserver admits its proxy and still nothing else from outside.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from deploy_support import EXISTING_SECRETS, containers, find, objects

from hybridops.deploy import chart
from hybridops.deploy.reachability import unreachable
from hybridops.deploy.render_connections import Connection
from hybridops.deploy.values import ChartValues

UI_PROXY = chart.CI_DIR / "ui-proxy-values.yaml"
ISSUER = "https://sso.example.com/realms/data"
SECRET = "hybridops-ui-proxy-oidc"
# fronted UI -> (its proxy's name, the in-cluster Service it forwards to, its public host)
FRONTED = {
    "dagster": ("hybridops-ui-proxy-dagster", "hybridops-dagster-webserver:80", "dagster.example.com"),
    "grafana": ("hybridops-ui-proxy-grafana", "hybridops-grafana:80", "grafana.example.com"),
    "mlflow": ("hybridops-ui-proxy-mlflow", "hybridops-mlflow:5000", "mlflow.example.com"),
}
MINIMAL = {
    "uiProxy": {
        "enabled": True,
        "existingSecret": SECRET,
        "oidc": {"issuerUrl": ISSUER, "clientId": "hybridops-ui", "emailDomains": ["example.com"]},
    }
}


def _proxy_objects(objs: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o
        for o in objs
        if o["metadata"]["labels"]["app.kubernetes.io/component"].startswith("ui-proxy")
        or "ui-proxy" in o["metadata"]["name"]
    ]


def _render(overrides: dict[str, Any], profile: str = "hybrid") -> list[dict[str, Any]]:
    return chart.manifests(chart.render(profile, [EXISTING_SECRETS], overrides=overrides))


def _args(deployment: dict[str, Any]) -> list[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


# --- off: nothing of it, nothing else changed ------------------------------------------------------------------
@pytest.mark.parametrize("profile", chart.profiles())
def test_off_by_default_renders_no_proxy_and_changes_nothing(profile: str) -> None:
    objs = objects(profile, (EXISTING_SECRETS,))
    assert _proxy_objects(objs) == []
    assert not [o for o in objs if o["kind"] == "Ingress"]
    # Every other uiProxy setting filled in, still off: byte-identical to the default render.
    configured_off = {
        "uiProxy": {**MINIMAL["uiProxy"], "enabled": False, "ingress": {"enabled": True}, "replicas": 3}
    }
    assert chart.render(profile, [EXISTING_SECRETS], overrides=configured_off) == chart.render(
        profile, [EXISTING_SECRETS]
    )


# --- on: the proxies, field by field ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def enabled() -> tuple[dict[str, Any], ...]:
    return objects("hybrid", (UI_PROXY,))


@pytest.mark.parametrize("ui", FRONTED)
def test_each_proxy_signs_in_at_the_oidc_provider_and_forwards_to_its_ui(
    enabled: tuple[dict[str, Any], ...], ui: str
) -> None:
    name, upstream, host = FRONTED[ui]
    deployment = find(enabled, "Deployment", name)
    assert _args(deployment) == [
        "--http-address=0.0.0.0:4180",
        f"--upstream=http://{upstream}/",
        "--provider=oidc",
        f"--oidc-issuer-url={ISSUER}",
        "--client-id=hybridops-ui",
        "--scope=openid email profile",
        "--email-domain=example.com",
        "--allowed-group=data-platform",
        "--oidc-groups-claim=groups",
        f"--redirect-url=https://{host}/oauth2/callback",
        "--reverse-proxy=true",
        "--cookie-name=__Host-hybridops-ui",
        "--cookie-secure=true",
        "--cookie-httponly=true",
        "--cookie-samesite=lax",
        "--cookie-expire=12h",
        "--skip-provider-button=true",
        "--silence-ping-logging=true",
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "docker.io/oauth2-proxy/oauth2-proxy:v7.15.6"
    # The two secrets only by reference to the named Secret, never a literal, nothing else in env.
    assert container["env"] == [
        {
            "name": "OAUTH2_PROXY_CLIENT_SECRET",
            "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "client-secret"}},
        },
        {
            "name": "OAUTH2_PROXY_COOKIE_SECRET",
            "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "cookie-secret"}},
        },
    ]
    assert container["ports"] == [{"name": "http", "containerPort": 4180, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert container["resources"] == {
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"cpu": "200m", "memory": "128Mi"},
    }


@pytest.mark.parametrize("ui", FRONTED)
def test_each_proxy_runs_locked_down_with_the_release_labels(
    enabled: tuple[dict[str, Any], ...], ui: str
) -> None:
    name, _, _ = FRONTED[ui]
    deployment = find(enabled, "Deployment", name)
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in containers(spec):
        assert container["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == f"ui-proxy-{ui}"
    assert labels["app.kubernetes.io/instance"] == "hybridops"
    assert labels["app.kubernetes.io/part-of"] == "hybridops"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == f"ui-proxy-{ui}"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    # Its Service selects exactly these pods, on the named port.
    service = find(enabled, "Service", name)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    # Service names are unique per UI: no Service selects another UI's proxy.
    others = [f"ui-proxy-{other}" for other in FRONTED if other != ui]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] not in others


def test_the_ingress_sends_each_host_only_to_its_proxy(enabled: tuple[dict[str, Any], ...]) -> None:
    (ingress,) = [o for o in enabled if o["kind"] == "Ingress"]
    assert ingress["metadata"]["name"] == "hybridops-ui-proxy"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["dagster.example.com"], "secretName": "dagster-example-com-tls"}
    ]
    routes = {
        rule["host"]: [
            (p["path"], p["pathType"], p["backend"]["service"]["name"], p["backend"]["service"]["port"])
            for p in rule["http"]["paths"]
        ]
        for rule in ingress["spec"]["rules"]
    }
    assert routes == {host: [("/", "Prefix", name, {"name": "http"})] for name, _, host in FRONTED.values()}


def test_mlflow_behind_its_proxy_accepts_its_public_host_and_origin(
    enabled: tuple[dict[str, Any], ...],
) -> None:
    (server,) = [
        c for c in find(enabled, "Deployment", "hybridops-mlflow")["spec"]["template"]["spec"]["containers"]
        if c["name"] == "mlflow"
    ]  # fmt: skip
    script = "\n".join(server.get("command", []) + server.get("args", []))
    hosts = re.search(r'allowed_hosts="([^"]+)"', script)
    assert hosts and "mlflow.example.com" in hosts.group(1).split(","), script[:2000]
    assert '--cors-allowed-origins "https://mlflow.example.com"' in script
    # Not fronted: MLflow's command line is the default one.
    default = find(objects("hybrid", (EXISTING_SECRETS,)), "Deployment", "hybridops-mlflow")
    (default_server,) = [
        c for c in default["spec"]["template"]["spec"]["containers"] if c["name"] == "mlflow"
    ]
    default_script = "\n".join(default_server.get("command", []) + default_server.get("args", []))
    assert "--cors-allowed-origins" not in default_script
    assert "example.com" not in default_script


# --- who reaches what ------------------------------------------------------------------------------------------------
def _upstream(deployment: dict[str, Any]) -> tuple[str, int]:
    (url,) = [a.split("=", 1)[1] for a in _args(deployment) if a.startswith("--upstream=")]
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def test_each_proxy_reaches_its_ui_and_the_identity_provider(enabled: tuple[dict[str, Any], ...]) -> None:
    objs = list(enabled)
    for ui, (name, upstream, _) in FRONTED.items():
        host, port = _upstream(find(enabled, "Deployment", name))
        assert f"{host}:{port}" == upstream
        assert unreachable(objs, [Connection(f"ui-proxy-{ui}", host, port)]) == [], ui
        # discovery document, keys and code redemption at the issuer (https)
        assert unreachable(objs, [Connection(f"ui-proxy-{ui}", "sso.example.com", 443)]) == [], ui
        # but no other UI: the proxies are no way around each other's sign-in
        for other, (_, other_upstream, _) in FRONTED.items():
            if other != ui:
                other_host, other_port = other_upstream.split(":")
                denied = unreachable(objs, [Connection(f"ui-proxy-{ui}", other_host, int(other_port))])
                assert len(denied) == 1 and "ingress" in denied[0].reason, (ui, other)


def test_only_the_ingress_namespace_reaches_the_proxies_and_the_webserver_stays_closed(
    enabled: tuple[dict[str, Any], ...],
) -> None:
    objs = list(enabled)
    for name, _, _ in FRONTED.values():
        assert unreachable(objs, [Connection("controller", name, 80, client_namespace="ingress-nginx")]) == []
        assert len(unreachable(objs, [Connection("browser", name, 80, client_namespace="default")])) == 1
    webserver = ("hybridops-dagster-webserver", 80)
    for outside in (
        Connection("controller", *webserver, client_namespace="ingress-nginx"),
        Connection("browser", *webserver, client_namespace="default"),
        Connection("inference", *webserver),
    ):
        (denied,) = unreachable(objs, [outside])
        assert "ingress" in denied.reason, outside
    policy = find(enabled, "NetworkPolicy", "hybridops-allow-dagster-webserver-ui-proxy")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchExpressions"][0]["values"] == ["ui-proxy-dagster"]


def test_with_ingress_from_unset_the_proxy_is_open_like_the_other_uis() -> None:
    objs = _render(MINIMAL)
    assert {o["metadata"]["name"] for o in _proxy_objects(objs) if o["kind"] != "NetworkPolicy"} == {
        "hybridops-ui-proxy-dagster"
    }
    assert (
        unreachable(objs, [Connection("browser", "hybridops-ui-proxy-dagster", 80, client_namespace="x")])
        == []
    )
    assert unreachable(objs, [Connection("ui-proxy-dagster", "hybridops-dagster-webserver", 80)]) == []
    denied = unreachable(
        objs, [Connection("browser", "hybridops-dagster-webserver", 80, client_namespace="x")]
    )
    assert len(denied) == 1
    # No Ingress unless asked for; the redirect URL then follows the request's forwarded host.
    assert not [o for o in objs if o["kind"] == "Ingress"]
    assert not [
        a for a in _args(find(objs, "Deployment", "hybridops-ui-proxy-dagster")) if "redirect-url" in a
    ]


def test_the_peers_named_for_the_webserver_keep_their_way_in_beside_the_proxy() -> None:
    auth = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "auth"}}}
    objs = _render({**MINIMAL, "networkPolicy": {"dagsterWebserverFrom": [auth]}})
    webserver = ("hybridops-dagster-webserver", 80)
    assert unreachable(objs, [Connection("other-proxy", *webserver, client_namespace="auth")]) == []
    assert unreachable(objs, [Connection("ui-proxy-dagster", *webserver)]) == []
    names = {o["metadata"]["name"] for o in objs if o["kind"] == "NetworkPolicy"}
    assert {"hybridops-allow-dagster-webserver", "hybridops-allow-dagster-webserver-ui-proxy"} <= names


def test_replicas_bring_a_pdb_and_spread() -> None:
    objs = _render({"uiProxy": {**MINIMAL["uiProxy"], "replicas": 2}})
    assert find(objs, "PodDisruptionBudget", "hybridops-ui-proxy-dagster")["spec"]["maxUnavailable"] == 1
    spec = find(objs, "Deployment", "hybridops-ui-proxy-dagster")["spec"]
    assert spec["replicas"] == 2 and spec["template"]["spec"]["topologySpreadConstraints"]


# --- wrong values fail the render, saying what to set ---------------------------------------------------------------
def _without(key: str) -> dict[str, Any]:
    proxy = {**MINIMAL["uiProxy"], "oidc": dict(MINIMAL["uiProxy"]["oidc"])}
    if key in proxy:
        del proxy[key]
    else:
        del proxy["oidc"][key]
    return {"uiProxy": proxy}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (_without("existingSecret"), 'uiProxy.enabled=true needs uiProxy.existingSecret: a Secret in namespace hybridops with the OAuth client secret under "client-secret" and the cookie secret'),
        (_without("issuerUrl"), "uiProxy.enabled=true needs uiProxy.oidc.issuerUrl"),
        (_without("clientId"), "uiProxy.enabled=true needs uiProxy.oidc.clientId"),
        (_without("emailDomains"), "uiProxy.enabled=true needs uiProxy.oidc.emailDomains"),
        (
            {"uiProxy": {**MINIMAL["uiProxy"], "ingress": {"enabled": True}}},
            "uiProxy.ingress.enabled=true needs uiProxy.uis.dagster.host",
        ),
        (
            {"uiProxy": {**MINIMAL["uiProxy"], "uis": {"mlflow": {"enabled": True}}}},
            "uiProxy.uis.mlflow.enabled=true needs uiProxy.uis.mlflow.host",
        ),
        (
            {"uiProxy": {**MINIMAL["uiProxy"], "uis": {"dagster": {"enabled": False}}}},
            "uiProxy.enabled=true but no UI is fronted",
        ),
        (
            {**MINIMAL, "monitoring": {"mode": "external"}, "uiProxy": {**MINIMAL["uiProxy"], "uis": {"grafana": {"enabled": True}}}},
            "uiProxy.uis.grafana.enabled=true but this release does not deploy it: it needs monitoring.enabled=true and monitoring.mode=bundled",
        ),
    ],
    ids=["no-secret", "no-issuer", "no-client", "no-domains", "ingress-no-host", "mlflow-no-host", "nothing", "no-grafana"],
)  # fmt: skip
def test_an_incomplete_proxy_fails_the_render_naming_the_value(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(chart.ChartError) as failure:
        chart.render("hybrid", [EXISTING_SECRETS], overrides=overrides)
    assert message in str(failure.value)


def test_the_dagster_proxy_needs_dagster() -> None:
    with pytest.raises(
        chart.ChartError, match=r"uiProxy.uis.dagster.enabled=true but this release does not deploy it"
    ):
        chart.render("mlops", [EXISTING_SECRETS], overrides={**MINIMAL, "dagster": {"enabled": False}})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"uiProxy": {"image": {"repository": "oauth2-proxy/oauth2-proxy", "tag": "latest"}}},
            "uiProxy/image/tag",
        ),
        ({"uiProxy": {"oidc": {"issuerUrl": "http://sso.example.com"}}}, "issuerUrl"),
        ({"uiProxy": {"upstream": "http://elsewhere"}}, "upstream"),
    ],
    ids=["latest-tag", "plain-http-issuer", "unknown-key"],
)
def test_the_values_schema_refuses_bad_proxy_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(chart.ChartError, match=message):
        chart.render("hybrid", [EXISTING_SECRETS], overrides=overrides)


def test_the_values_model_names_what_an_enabled_proxy_lacks() -> None:
    with pytest.raises(ValueError, match=r"uiProxy.enabled=true needs uiProxy.existingSecret"):
        ChartValues.model_validate({"uiProxy": {**MINIMAL["uiProxy"], "existingSecret": None}})
    assert ChartValues.model_validate(MINIMAL).ui_proxy.enabled is True
