"""Helpers of the observability tests: free ports, a real Prometheus and a real Alertmanager in temp dirs,
a webhook receiver, PromQL of the dashboards and rules. A module with a unique name (not conftest) so test
modules import it by name."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml
from tools import require_tool

from hybridops.processes import stop as stop_process

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "infra" / "prometheus" / "rules"
RULE_TESTS_DIR = REPO / "infra" / "prometheus" / "tests"
ALERTMANAGER_CONFIG = REPO / "infra" / "alertmanager" / "alertmanager.yml"
DASHBOARDS_DIR = REPO / "infra" / "grafana" / "dashboards"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll ``condition`` until it returns something truthy (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (requests.RequestException, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# --- dashboards and rules ----------------------------------------------------------------------------
def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str


def panel_queries() -> list[PanelQuery]:
    out = []
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append(PanelQuery(name, panel["title"], target["expr"]))
    return out


def grafana_to_promql(expr: str, rate_interval: str = "15s") -> str:
    """Substitute the Grafana variables the dashboards use: ``$__rate_interval`` and ``$metric`` (All)."""
    return expr.replace("$__rate_interval", rate_interval).replace("$metric", ".*")


def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in sorted(RULES_DIR.glob("*.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def rule_files_with_for(workdir: Path, for_overrides: dict[str, str]) -> list[Path]:
    """The project's rule files copied to ``workdir`` with the ``for`` of the named alerts replaced.

    Only the waiting time changes (a 15m ``for`` cannot elapse in a test); expressions, labels and
    annotations stay the project's own.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    for path in sorted(RULES_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") in for_overrides:
                    rule["for"] = for_overrides[rule["alert"]]
        target = workdir / path.name
        target.write_text(yaml.safe_dump(document, sort_keys=False))
        out.append(target)
    missing = set(for_overrides) - {rule["alert"] for rule in alert_rules()}
    assert not missing, f"no such alerts in {RULES_DIR}: {sorted(missing)}"
    return out


# --- a real Prometheus -------------------------------------------------------------------------------
@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, expr: str) -> dict[str, Any]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return dict(response.json())

    def values(self, expr: str) -> list[dict[str, Any]]:
        body = self.query(expr)
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])


def prometheus_binary() -> str:
    """Prometheus's path; skips the test (fails it under HYBRIDOPS_STRICT_TOOLS=1) when it is missing."""
    return require_tool("prometheus")


@contextmanager
def run_prometheus(
    workdir: Path,
    targets: dict[str, str],
    rule_files: list[Path],
    interval: str = "1s",
    alertmanager: str | None = None,
) -> Iterator[Prometheus]:
    """Start ``prometheus`` on a free loopback port scraping ``targets`` (job name -> host:port), sending
    its alerts to ``alertmanager`` (host:port) when given."""
    binary = prometheus_binary()
    assert binary, "prometheus is not installed"
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in targets.items()
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_for(
            lambda: requests.get(f"{prom.url}/-/ready", timeout=2).status_code == 200,
            30,
            f"Prometheus ready ({log})",
        )
        yield prom
    finally:
        stop_process(process)


# --- a real Alertmanager and a webhook receiver ------------------------------------------------------
def alertmanager_binary() -> str:
    """Debian names the binary ``prometheus-alertmanager``; upstream builds name it ``alertmanager``."""
    return require_tool("alertmanager")


@dataclass(frozen=True)
class Notification:
    """One webhook notification of Alertmanager (payload version 4) and when it arrived."""

    path: str
    body: dict[str, Any]
    received: float

    @property
    def receiver(self) -> str:
        return str(self.body["receiver"])

    @property
    def status(self) -> str:
        return str(self.body["status"])

    @property
    def alertname(self) -> str:
        return str(self.body["groupLabels"].get("alertname", ""))

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return list(self.body["alerts"])


class WebhookReceiver:
    """A loopback HTTP server that records every notification POSTed to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Notification] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with receiver._lock:
                    receiver._received.append(Notification(self.path, body, time.monotonic()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test asserts on the recorded notifications, not on an access log

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def notifications(self) -> list[Notification]:
        with self._lock:
            return list(self._received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def run_webhook() -> Iterator[WebhookReceiver]:
    webhook = WebhookReceiver()
    try:
        yield webhook
    finally:
        webhook.close()


TIMING_KEYS = ("group_wait", "group_interval")


def _routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes", []):
        yield from _routes(child)


def alertmanager_config_for_test(
    webhook_url: str,
    group_wait: str = "1s",
    group_interval: str = "1s",
    resolve_timeout: str = "5s",
) -> dict[str, Any]:
    """The project's Alertmanager configuration, adapted the way a deployment sets its receivers.

    The routing tree (matchers, grouping, repeat intervals) and the inhibition rules stay the project's
    own. Two things change: the waiting times (``group_wait`` and ``group_interval`` wherever the tree
    sets them, ``resolve_timeout``), and every receiver's notifiers, which become one webhook to
    ``<webhook_url>/hooks/<receiver name>`` keeping the notifier's ``send_resolved``.
    """
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config.setdefault("global", {})["resolve_timeout"] = resolve_timeout
    root = config["route"]
    for route in _routes(root):
        for key in TIMING_KEYS:
            if key in route or route is root:
                route[key] = group_wait if key == "group_wait" else group_interval
    for receiver in config["receivers"]:
        notifiers = [
            (kind, notifier)
            for kind in [key for key in receiver if key.endswith("_configs")]
            for notifier in receiver.pop(kind)
        ]
        # Alertmanager's own default: webhooks send resolved notifications, e-mail and Slack do not.
        send_resolved = any(n.get("send_resolved", kind == "webhook_configs") for kind, n in notifiers)
        if notifiers:
            receiver["webhook_configs"] = [
                {"url": f"{webhook_url}/hooks/{receiver['name']}", "send_resolved": send_resolved}
            ]
    return dict(config)


def without_timing(config: dict[str, Any]) -> dict[str, Any]:
    """The routing tree without its waiting times (to compare an adapted config with the project's)."""
    route = copy.deepcopy(config["route"])
    for node in _routes(route):
        for key in TIMING_KEYS:
            node.pop(key, None)
    return dict(route)


@dataclass
class Alertmanager:
    url: str
    address: str
    process: subprocess.Popen[bytes]
    log: Path

    def alerts(self, alertname: str | None = None) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds (active, silenced and inhibited), optionally by name."""
        params: dict[str, Any] = {"active": "true", "silenced": "true", "inhibited": "true"}
        if alertname:
            params["filter"] = f'alertname="{alertname}"'
        response = requests.get(f"{self.url}/api/v2/alerts", params=params, timeout=10)
        response.raise_for_status()
        return list(response.json())


@contextmanager
def run_alertmanager(workdir: Path, config: dict[str, Any]) -> Iterator[Alertmanager]:
    """Start Alertmanager on a free loopback port with ``config``; clustering off (no other socket)."""
    binary = alertmanager_binary()
    assert binary, "alertmanager is not installed"
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / "alertmanager.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    manager = Alertmanager(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", process, log)
    try:
        wait_for(
            lambda: requests.get(f"{manager.url}/-/ready", timeout=2).status_code == 200,
            30,
            f"Alertmanager ready ({log})",
        )
        yield manager
    finally:
        stop_process(process)


@contextmanager
def run_inference_service(home: Path, env: dict[str, str]) -> Iterator[str]:
    """``hybridops serve`` as a subprocess on a free port; yields its base URL once ready."""
    exe = Path(sys.executable).with_name("hybridops")  # the running virtualenv's, wherever it lives
    port = free_port()
    log = home / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: requests.get(f"{url}/readyz", timeout=2).status_code == 200,
            120,
            f"inference service ready ({log})",
            interval=0.5,
        )
        yield url
    finally:
        stop_process(process, 15)
