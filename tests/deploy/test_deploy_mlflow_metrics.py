"""MLflow's ``/metrics`` sits behind its basic-auth app (``--app-name basic-auth``), so every scrape of it logs
in as the MLflow admin: the bundled Prometheus' job with ``basic_auth`` (username from values, the password
file from the admin Secret mounted into its pod) and, in external mode, the ServiceMonitor's ``basicAuth``
(both halves by secretKeyRef). A real Prometheus runs the rendered job against a stand-in ``/metrics`` that
answers 401 without the login."""

from __future__ import annotations

import base64
import copy
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import requests
import yaml
from deploy_support import EXISTING_SECRETS, find, objects
from tools import require_tool

from hybridops.deploy import chart
from hybridops.processes import stop as stop_process

EXTERNAL = chart.CI_DIR / "external-monitoring-values.yaml"
DATAOPS_EXTERNAL = chart.CI_DIR / "external-monitoring-dataops-values.yaml"
JOB = "hybridops-mlflow"

# (id, profile, values files, overrides)
RENDERS: list[tuple[str, str, tuple[Path, ...], dict[str, Any]]] = [
    ("hybrid", "hybrid", (), {}),
    ("mlops", "mlops", (), {}),
    ("existing-secret", "hybrid", (EXISTING_SECRETS,), {}),
    (
        "custom-admin",
        "hybrid",
        (),
        {"mlflow": {"auth": {"adminUsername": "mlflow-root", "existingSecret": "mlflow-login"}}},
    ),
]


def _objects(profile: str, files: tuple[Path, ...], overrides: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    if not overrides:
        return objects(profile, files)
    return tuple(chart.manifests(chart.render(profile, list(files), overrides=overrides)))


def _mlflow_login(objs: tuple[dict[str, Any], ...]) -> tuple[str, dict[str, str]]:
    """The admin login of the MLflow server itself: its username and its password's secretKeyRef."""
    (server,) = find(objs, "Deployment", "hybridops-mlflow")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in server["env"]}
    return env["MLFLOW_TRACKING_USERNAME"]["value"], env["MLFLOW_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]


def _prometheus_config(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return yaml.safe_load(find(objs, "ConfigMap", "hybridops-prometheus")["data"]["prometheus.yml"])


def _job(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (job,) = [j for j in _prometheus_config(objs)["scrape_configs"] if j["job_name"] == JOB]
    return job


def _prometheus_pod(objs: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = find(objs, "Deployment", "hybridops-prometheus")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


# --- the bundled Prometheus -------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "profile", "files", "overrides"), RENDERS, ids=[r[0] for r in RENDERS])
def test_the_bundled_scrape_of_mlflow_logs_in_as_the_admin(
    case: str, profile: str, files: tuple[Path, ...], overrides: dict[str, Any]
) -> None:
    objs = _objects(profile, files, overrides)
    username, password_ref = _mlflow_login(objs)
    job = _job(objs)
    assert job["static_configs"] == [{"targets": ["hybridops-mlflow:5000"]}]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert set(job["basic_auth"]) == {"username", "password_file"}  # never a literal password
    assert job["basic_auth"]["username"] == username
    password_file = PurePosixPath(job["basic_auth"]["password_file"])
    assert password_file == PurePosixPath("/etc/prometheus/secrets/mlflow/password")

    # The file is the MLflow server's own admin password: its Secret mounted read-only in the pod.
    spec, container = _prometheus_pod(objs)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(password_file.parent)]
    assert mount["readOnly"] is True and "subPath" not in mount  # a rotated password reaches the file
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"] == {
        "secretName": password_ref["name"],
        "defaultMode": 0o440,
        "items": [{"key": password_ref["key"], "path": password_file.name}],
    }
    if case == "custom-admin":
        assert username == "mlflow-root" and password_ref == {"name": "mlflow-login", "key": "password"}
    elif case == "existing-secret":
        assert password_ref == {"name": "hybridops-mlflow-admin", "key": "password"}
    else:
        assert password_ref == {"name": "hybridops-mlflow-auth", "key": "password"}
        assert find(objs, "Secret", "hybridops-mlflow-auth")["data"]["password"]
    # Readable by the pod's group only (fsGroup): the container runs as that UID/GID, not as root.
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]


def test_the_password_stays_out_of_the_prometheus_config() -> None:
    objs = objects("hybrid")
    password = base64.b64decode(find(objs, "Secret", "hybridops-mlflow-auth")["data"]["password"]).decode()
    assert password not in yaml.safe_dump(find(objs, "ConfigMap", "hybridops-prometheus"))
    assert password not in yaml.safe_dump(find(objs, "Deployment", "hybridops-prometheus"))


def test_dataops_has_no_mlflow_scrape_and_mounts_no_mlflow_secret() -> None:
    objs = objects("dataops")
    assert JOB not in {j["job_name"] for j in _prometheus_config(objs)["scrape_configs"]}
    spec, container = _prometheus_pod(objs)
    assert not [v for v in spec["volumes"] if "secret" in v]
    assert not [m for m in container["volumeMounts"] if m["mountPath"].startswith("/etc/prometheus/secrets")]


# --- a real Prometheus against a stand-in /metrics behind basic auth ---------------------------------------
class _BasicAuthMetrics(BaseHTTPRequestHandler):
    """``/metrics`` answering 401 without the login (MLflow's basic-auth app in front of its exporter)."""

    expected = ""
    seen: list[tuple[str, int]] = []

    def do_GET(self) -> None:
        authorization = self.headers.get("Authorization", "")
        ok = self.path == "/metrics" and authorization == self.expected
        self.seen.append((authorization, 200 if ok else 401))
        body = (
            b"# TYPE mlflow_stand_in_requests_total counter\nmlflow_stand_in_requests_total 1\n"
            if ok
            else b""
        )
        self.send_response(200 if ok else 401)
        if not ok:
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _serve(username: str, password: str) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    handler = type("Handler", (_BasicAuthMetrics,), {"expected": f"Basic {token}", "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _up(url: str) -> dict[str, float]:
    body = requests.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=5).json()
    return {r["metric"]["job"]: float(r["value"][1]) for r in body["data"]["result"]}


def test_prometheus_with_the_rendered_job_scrapes_mlflow_behind_basic_auth(tmp_path: Path) -> None:
    """The rendered job, its target and password file moved to the test's (the file holds what the Secret
    holds), next to the same job without ``basic_auth``: the first is up, the second gets 401 (what the
    chart's scrape got before) and is down."""
    objs = objects("hybrid", (EXISTING_SECRETS,))
    job = _job(objs)
    password = "s3cret-generated-by-the-chart"
    (tmp_path / "password").write_text(password)
    with _serve(job["basic_auth"]["username"], password) as (target, seen):
        with_login = copy.deepcopy(job)
        with_login["static_configs"] = [{"targets": [target]}]
        with_login["basic_auth"]["password_file"] = str(tmp_path / "password")
        without = {k: v for k, v in copy.deepcopy(with_login).items() if k != "basic_auth"}
        without["job_name"] = "without-login"
        config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [with_login, without]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = _free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    require_tool("prometheus"),
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 60
                up: dict[str, float] = {}
                while time.monotonic() < deadline:
                    try:
                        up = _up(url)
                    except requests.RequestException:
                        up = {}
                    if set(up) == {JOB, "without-login"}:
                        break
                    time.sleep(0.5)
            finally:
                stop_process(process)
    assert up == {JOB: 1.0, "without-login": 0.0}, (tmp_path / "prometheus.log").read_text()[-2000:]
    statuses = {status for _, status in seen}
    assert statuses == {200, 401}
    assert {auth for auth, status in seen if status == 401} == {""}  # only the job without the login failed


# --- external mode: the ServiceMonitor ------------------------------------------------------------------------
@pytest.mark.parametrize("files", [(EXTERNAL,), (EXTERNAL, EXISTING_SECRETS)], ids=["generated", "existing"])
def test_the_mlflow_servicemonitor_logs_in_as_the_admin(files: tuple[Path, ...]) -> None:
    objs = objects("hybrid", files)
    username, password_ref = _mlflow_login(objs)
    monitor = find(objs, "ServiceMonitor", "hybridops-mlflow")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    auth = endpoint["basicAuth"]
    assert auth["password"] == password_ref  # the server's own admin password, by reference
    # The username from a Secret too (basicAuth takes no literal), rendered in the monitor's namespace.
    secret = find(objs, "Secret", auth["username"]["name"])
    assert secret["metadata"]["namespace"] == monitor["metadata"]["namespace"] == "hybridops"
    assert secret["type"] == "Opaque" and secret["stringData"] == {auth["username"]["key"]: username}
    assert "data" not in secret
    # The password Secret lives in the monitor's namespace: generated by the chart, or pre-created there.
    if EXISTING_SECRETS in files:
        assert password_ref == {"name": "hybridops-mlflow-admin", "key": "password"}
    else:
        generated = find(objs, "Secret", password_ref["name"])
        assert generated["metadata"]["namespace"] == monitor["metadata"]["namespace"]
        assert password_ref["key"] in generated["data"]
    # Only MLflow's endpoint logs in.
    for name in ("hybridops-inference", "hybridops-exporter"):
        (other,) = find(objs, "ServiceMonitor", name)["spec"]["endpoints"]
        assert "basicAuth" not in other, name


def test_the_username_secret_exists_only_with_the_mlflow_servicemonitor() -> None:
    def scrape_secrets(objs: tuple[dict[str, Any], ...]) -> list[str]:
        return [
            o["metadata"]["name"]
            for o in objs
            if o["kind"] == "Secret" and "mlflow-scrape" in o["metadata"]["name"]
        ]

    assert scrape_secrets(objects("hybrid", (EXTERNAL,))) == ["hybridops-mlflow-scrape"]
    assert scrape_secrets(objects("hybrid")) == []  # bundled: the username is in prometheus.yml
    assert scrape_secrets(objects("hybrid", (DATAOPS_EXTERNAL,))) == []  # no MLflow
    no_monitors = chart.render(
        "hybrid", [EXTERNAL], overrides={"monitoring": {"external": {"serviceMonitors": False}}}
    )
    assert scrape_secrets(tuple(chart.manifests(no_monitors))) == []
