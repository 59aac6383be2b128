"""The bundled Alertmanager: its configuration Secret keeps infra/alertmanager/alertmanager.yml's routing tree
and takes the receivers from values, passes ``amtool check-config``, routes like the infra file, drives a real
Alertmanager to a webhook set in values; Prometheus sends its alerts to it."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from deploy_support import find, objects
from tools import require_tool

from hybridops.deploy import chart
from hybridops.deploy.monitoring_values import AlertReceivers, EmailNotifier, SlackNotifier, WebhookNotifier

INFRA_CONFIG = chart.CHART_DIR.parents[1] / "infra" / "alertmanager" / "alertmanager.yml"
NAME = "hybridops-alertmanager"

# Receivers as a user sets them (hosts under reserved example/invalid names: nothing is contacted).
RECEIVERS: dict[str, Any] = {
    "dataTeam": {"webhook": {"url": "http://alert-hooks.team-data.svc:8080/data"}},
    "dataTeamCritical": {
        "webhook": {"url": "http://alert-hooks.team-data.svc:8080/data-critical", "sendResolved": False},
        "email": {
            "to": "data-oncall@example.org",
            "from": "alerts@example.org",
            "smarthost": "smtp.example.org:587",
            "authUsername": "alerts",
            "authPasswordSecret": {"name": "smtp-relay", "key": "password"},
        },
    },
    "mlTeam": {
        "slack": {"apiUrl": "https://hooks.example.invalid/services/T0/B0/X0", "channel": "#ml-alerts"}
    },
    "mlTeamCritical": {
        "slack": {"apiUrl": "https://hooks.example.invalid/services/T0/B1/X1"},
        "email": {
            "to": "ml-oncall@example.org",
            "from": "alerts@example.org",
            "smarthost": "mail.example.org:25",
        },
    },
}


def _render(**overrides: Any) -> tuple[dict[str, Any], ...]:
    return tuple(chart.manifests(chart.render("hybrid", overrides=overrides)))


def _with_receivers(receivers: dict[str, Any] = RECEIVERS, **alertmanager: Any) -> tuple[dict[str, Any], ...]:
    return _render(monitoring={"alertmanager": {"receivers": receivers, **alertmanager}})


def _case(case: str) -> tuple[dict[str, Any], ...]:
    return objects("hybrid") if case == "defaults" else _with_receivers()


def _config_text(objs: tuple[dict[str, Any], ...]) -> str:
    return str(find(objs, "Secret", NAME)["stringData"]["alertmanager.yml"])


def _config(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return dict(yaml.safe_load(_config_text(objs)))


def _infra() -> dict[str, Any]:
    return dict(yaml.safe_load(INFRA_CONFIG.read_text()))


# --- the configuration ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["defaults", "receivers"])
def test_routing_tree_is_the_infra_files_apart_from_receivers(case: str) -> None:
    rendered, infra = _config(_case(case)), _infra()
    assert set(rendered) == set(infra)
    for key in set(infra) - {"receivers"}:
        assert rendered[key] == infra[key], key  # route (matchers, grouping, timings), inhibit_rules, global
    assert [r["name"] for r in rendered["receivers"]] == [r["name"] for r in infra["receivers"]]


def _values_key(receiver: str) -> str:
    head, *rest = receiver.split("-")
    return head + "".join(part.title() for part in rest)


def test_values_name_every_receiver_of_the_routing_tree() -> None:
    """The values model has one field per receiver of the infra file (a new receiver there fails here)."""
    fields = {field.alias for field in AlertReceivers.model_fields.values()}
    assert fields == {_values_key(r["name"]) for r in _infra()["receivers"]}


def test_default_receivers_notify_nobody() -> None:
    """No URL, address or password by default: alerts wait in the Alertmanager UI until receivers are set."""
    assert _config(objects("hybrid"))["receivers"] == [{"name": r["name"]} for r in _infra()["receivers"]]


def test_receivers_from_values_are_in_the_secret() -> None:
    """Each notifier as set in values, completed with the values models' defaults (send_resolved, TLS)."""

    def model(cls: Any, values: dict[str, Any]) -> dict[str, Any]:
        return dict(cls.model_validate(values).model_dump(by_alias=True, exclude_none=True))

    webhook = model(WebhookNotifier, RECEIVERS["dataTeamCritical"]["webhook"])
    email = model(EmailNotifier, RECEIVERS["dataTeamCritical"]["email"])
    slack = model(SlackNotifier, RECEIVERS["mlTeam"]["slack"])
    assert (webhook["sendResolved"], email["requireTls"], email["sendResolved"], slack["sendResolved"]) == (
        False,
        True,
        False,
        True,
    )
    receivers = {r["name"]: r for r in _config(_with_receivers())["receivers"]}
    assert receivers["default"] == {"name": "default"}
    assert receivers["data-team"] == {
        "name": "data-team",
        "webhook_configs": [{"url": "http://alert-hooks.team-data.svc:8080/data", "send_resolved": True}],
    }
    assert receivers["data-team-critical"] == {
        "name": "data-team-critical",
        "webhook_configs": [{"url": webhook["url"], "send_resolved": webhook["sendResolved"]}],
        "email_configs": [
            {
                "to": email["to"],
                "from": email["from"],
                "smarthost": email["smarthost"],
                "auth_username": "alerts",
                "auth_password_file": "/etc/alertmanager/secrets/data-team-critical-smtp-password",
                "require_tls": email["requireTls"],
                "send_resolved": email["sendResolved"],
            }
        ],
    }
    assert receivers["ml-team"] == {
        "name": "ml-team",
        "slack_configs": [{"api_url": slack["apiUrl"], "channel": "#ml-alerts", "send_resolved": True}],
    }
    critical = receivers["ml-team-critical"]
    assert critical["slack_configs"] == [
        {"api_url": "https://hooks.example.invalid/services/T0/B1/X1", "send_resolved": True}
    ]
    assert critical["email_configs"][0]["smarthost"] == "mail.example.org:25"
    assert "auth_password_file" not in critical["email_configs"][0]


def test_credentials_stay_out_of_everything_but_the_secret() -> None:
    objs = _with_receivers()
    secret = find(objs, "Secret", NAME)
    assert secret["type"] == "Opaque" and "hooks.example.invalid/services/T0/B0/X0" in _config_text(objs)
    for obj in objs:
        if obj is not secret:
            assert "services/T0/" not in json.dumps(obj), (obj["kind"], obj["metadata"]["name"])


@pytest.mark.parametrize("case", ["defaults", "receivers"])
def test_rendered_config_passes_amtool(case: str, tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(_config_text(_case(case)))
    amtool = require_tool("amtool")
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 receivers" in result.stdout and "3 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["team=data", "severity=critical"], "data-team-critical"),
        (["team=data", "severity=warning"], "data-team"),
        (["team=ml", "severity=critical"], "ml-team-critical"),
        (["team=ml", "severity=warning"], "ml-team"),
        (["severity=critical"], "default"),
    ],
)
def test_rendered_config_routes_by_team_and_severity(
    labels: list[str], receiver: str, tmp_path: Path
) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(_config_text(_with_receivers()))
    result = subprocess.run(
        [require_tool("amtool"), "config", "routes", "test", f"--config.file={path}", *labels],
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == receiver, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("receivers", "fragment"),
    [
        ({"opsTeam": {}}, "opsTeam"),
        ({"dataTeam": {"webhook": {"url": "ftp://hooks"}}}, "url"),
        ({"dataTeam": {"slack": {"apiUrl": "http://hooks.example.invalid/x"}}}, "apiUrl"),
        ({"dataTeam": {"email": {"to": "a@example.org", "from": "b@example.org"}}}, "smarthost"),
        ({"dataTeam": {"pagerduty": {"routingKey": "x"}}}, "pagerduty"),
    ],
    ids=["unknown-receiver", "webhook-scheme", "slack-scheme", "email-without-smarthost", "unknown-notifier"],
)
def test_schema_rejects_invalid_receivers(receivers: dict[str, Any], fragment: str) -> None:
    with pytest.raises(chart.ChartError, match=fragment):
        chart.render("hybrid", overrides={"monitoring": {"alertmanager": {"receivers": receivers}}})


# --- the workload --------------------------------------------------------------------------------------------
def test_alertmanager_deployment_mounts_its_config_and_smtp_passwords_as_files() -> None:
    objs = _with_receivers()
    deployment = find(objs, "Deployment", NAME)
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert deployment["spec"]["replicas"] == 1
    assert container["image"] == "docker.io/prom/alertmanager:v0.27.0"
    assert "--config.file=/etc/alertmanager/config/alertmanager.yml" in container["args"]
    assert "--cluster.listen-address=" in container["args"]  # one instance: no gossip port
    assert "env" not in container
    assert container["ports"] == [{"name": "http", "containerPort": 9093, "protocol": "TCP"}]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["config"]["mountPath"] == "/etc/alertmanager/config" and mounts["config"]["readOnly"]
    assert volumes["config"]["secret"]["secretName"] == NAME
    assert volumes["config"]["secret"]["items"] == [{"key": "alertmanager.yml", "path": "alertmanager.yml"}]
    assert mounts["smtp"]["mountPath"] == "/etc/alertmanager/secrets" and mounts["smtp"]["readOnly"]
    sources = volumes["smtp"]["projected"]["sources"]
    assert sources == [
        {
            "secret": {
                "name": "smtp-relay",
                "items": [{"key": "password", "path": "data-team-critical-smtp-password"}],
            }
        }
    ]
    assert "emptyDir" in volumes["data"] and mounts["data"]["mountPath"] == "/alertmanager"
    service = find(objs, "Service", NAME)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 9093, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    annotation = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    other = find(
        _with_receivers({"dataTeam": {"webhook": {"url": "http://elsewhere:80/"}}}), "Deployment", NAME
    )
    assert other["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != annotation  # rolls


def test_existing_secret_replaces_the_rendered_config() -> None:
    objs = _render(
        monitoring={
            "alertmanager": {
                "existingSecret": "team-alerting",
                "existingSecretKey": "am.yml",
                "egressPorts": [443],
            }
        }
    )
    assert ("Secret", NAME) not in {(o["kind"], o["metadata"]["name"]) for o in objs}
    spec = find(objs, "Deployment", NAME)["spec"]["template"]["spec"]
    config = next(v for v in spec["volumes"] if v["name"] == "config")["secret"]
    assert config["secretName"] == "team-alerting"
    assert config["items"] == [{"key": "am.yml", "path": "alertmanager.yml"}]
    egress = find(objs, "NetworkPolicy", "hybridops-allow-alertmanager-receivers")["spec"]["egress"]
    assert egress == [{"ports": [{"port": 443, "protocol": "TCP"}]}]


def test_egress_to_receivers_is_limited_to_their_ports() -> None:
    assert not any(
        o["metadata"]["name"] == "hybridops-allow-alertmanager-receivers" for o in objects("hybrid")
    )  # no receiver set: nothing leaves the release (an empty port list would allow every port)
    policy = find(_with_receivers(), "NetworkPolicy", "hybridops-allow-alertmanager-receivers")["spec"]
    assert policy["podSelector"]["matchExpressions"][0]["values"] == ["alertmanager"]
    assert policy["policyTypes"] == ["Egress"]
    (rule,) = policy["egress"]
    assert "to" not in rule
    assert sorted(p["port"] for p in rule["ports"]) == [25, 443, 587, 8080]


def test_prometheus_sends_alerts_to_the_bundled_alertmanager() -> None:
    objs = objects("hybrid")
    config = yaml.safe_load(find(objs, "ConfigMap", "hybridops-prometheus")["data"]["prometheus.yml"])
    port = find(objs, "Service", NAME)["spec"]["ports"][0]["port"]
    assert config["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": [f"{NAME}:{port}"]}]}]}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["hybridops-alertmanager"]["static_configs"] == [{"targets": [f"{NAME}:{port}"]}]


@pytest.mark.parametrize(
    "overrides",
    [{"monitoring": {"alertmanager": {"enabled": False}}}, {"monitoring": {"mode": "external"}}],
    ids=["disabled", "external-mode"],
)
def test_no_alertmanager_when_off_or_external(overrides: dict[str, Any]) -> None:
    objs = _render(**overrides)
    assert not [o for o in objs if "alertmanager" in o["metadata"]["name"]]
    prometheus = [
        o for o in objs if o["metadata"]["name"] == "hybridops-prometheus" and o["kind"] == "ConfigMap"
    ]
    for configmap in prometheus:
        assert "alerting" not in yaml.safe_load(configmap["data"]["prometheus.yml"])


# --- a real Alertmanager on the rendered configuration -------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _webhook() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    received: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_a_real_alertmanager_delivers_to_the_webhook_set_in_values(tmp_path: Path) -> None:
    """The rendered Secret's configuration, unchanged, run by a real Alertmanager on loopback: a critical
    data-team alert reaches the data-team-critical webhook from values (after the tree's 10s group_wait)."""
    alertmanager = require_tool("alertmanager")
    with _webhook() as (base, received):
        receivers = {
            key: {"webhook": {"url": f"{base}/{key}"}}
            for key in ("default", "dataTeam", "dataTeamCritical", "mlTeam", "mlTeamCritical")
        }
        (tmp_path / "alertmanager.yml").write_text(_config_text(_with_receivers(receivers)))
        port = _free_port()
        log = (tmp_path / "alertmanager.log").open("wb")
        process = subprocess.Popen(
            [
                alertmanager,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"

            def ready() -> bool:
                try:
                    return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
                except requests.ConnectionError:
                    return process.poll() is not None  # exited: stop waiting, the assert below says why

            _wait(ready, 30, "alertmanager to be ready")
            assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
            alert = {"alertname": "HybridopsBlockingCheckFailed", "team": "data", "severity": "critical"}
            posted = requests.post(f"{url}/api/v2/alerts", json=[{"labels": alert}], timeout=5)
            assert posted.status_code == 200, posted.text
            path, body = _wait(lambda: received[0] if received else None, 30, "the webhook notification")
            assert path == "/dataTeamCritical"
            assert body["receiver"] == "data-team-critical" and body["status"] == "firing"
            assert [a["labels"]["alertname"] for a in body["alerts"]] == ["HybridopsBlockingCheckFailed"]
            time.sleep(1)
            assert len(received) == 1, received  # one route, one group
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()
