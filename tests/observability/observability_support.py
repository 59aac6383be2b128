"""Helpers of the observability tests: free ports, a real Prometheus in a temp dir, PromQL of the
dashboards and rules. A module with a unique name (not conftest) so test modules import it by name."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

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


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


@contextmanager
def run_prometheus(
    workdir: Path, targets: dict[str, str], rule_files: list[Path], interval: str = "1s"
) -> Iterator[Prometheus]:
    """Start ``prometheus`` on a free loopback port scraping ``targets`` (job name -> host:port)."""
    binary = prometheus_binary()
    assert binary, "prometheus is not installed"
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in targets.items()
        ],
    }
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
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def run_inference_service(home: Path, env: dict[str, str]) -> Iterator[str]:
    """``hybridops serve`` as a subprocess on a free port; yields its base URL once ready."""
    exe = Path(REPO / ".venv" / "bin" / "hybridops")
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
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
