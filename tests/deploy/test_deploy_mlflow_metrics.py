"""MLflow's Prometheus metrics come from a sidecar of the MLflow pod, never through MLflow's basic-auth app.

MLflow's own ``/metrics`` answers 403 to every login but the admin's (the basic-auth app fails closed on
routes without a permission check), so scraping it would hand Prometheus the admin password. The pod's
``metrics`` container (``python -m hybridops.observability.multiprocess_metrics``) serves the metric files
MLflow's workers write to a shared emptyDir (``--expose-prometheus``), on its own port, without a login; only
Prometheus may reach that port. The rendered objects are checked field by field; then the real MLflow runs
with its rendered start script (PostgreSQL as the chart's) next to the sidecar's rendered command on the
same volume, and a real Prometheus runs the rendered job against it.
"""

from __future__ import annotations

import base64
import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from deploy_support import EXISTING_SECRETS, find, objects
from tools import missing, require_tool

from hybridops.deploy import chart
from hybridops.processes import stop as stop_process
from hybridops.rehearsal.kubelet import Pod, closed_port
from hybridops.rehearsal.postgres import MissingProgram, chart_postgresql
from hybridops.rehearsal.topology import Cluster
from hybridops.rehearsal.workloads import mlflow_pods, start_mlflow, start_mlflow_metrics

EXTERNAL = chart.CI_DIR / "external-monitoring-values.yaml"
DATAOPS_EXTERNAL = chart.CI_DIR / "external-monitoring-dataops-values.yaml"
JOB = "hybridops-mlflow"
METRICS_DIR = "/run/mlflow-metrics"
STARTUP_SECONDS = 300.0  # MLflow's start on a loaded 2-core machine; healthy, it takes far less

# (id, profile, values files, overrides)
RENDERS: list[tuple[str, str, tuple[Path, ...], dict[str, Any]]] = [
    ("hybrid", "hybrid", (), {}),
    ("mlops", "mlops", (), {}),
    ("existing-secret", "hybrid", (EXISTING_SECRETS,), {}),
    ("custom-port", "hybrid", (), {"mlflow": {"metrics": {"port": 9187}}}),
]


def _objects(profile: str, files: tuple[Path, ...], overrides: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    if not overrides:
        return objects(profile, files)
    return tuple(chart.manifests(chart.render(profile, list(files), overrides=overrides)))


def _pod(objs: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(pod spec, the MLflow server container, the metrics sidecar) of the MLflow Deployment."""
    spec = find(objs, "Deployment", "hybridops-mlflow")["spec"]["template"]["spec"]
    by_name = {c["name"]: c for c in spec["containers"]}
    assert set(by_name) == {"mlflow", "metrics"}
    return spec, by_name["mlflow"], by_name["metrics"]


def _prometheus_config(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return yaml.safe_load(find(objs, "ConfigMap", "hybridops-prometheus")["data"]["prometheus.yml"])


def _job(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (job,) = [j for j in _prometheus_config(objs)["scrape_configs"] if j["job_name"] == JOB]
    return job


def _ingress_to(objs: tuple[dict[str, Any], ...], component: str, port: str) -> list[dict[str, Any]]:
    """The ingress rules of every NetworkPolicy selecting ``component`` that open ``port``."""
    rules = []
    for policy in (o for o in objs if o["kind"] == "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        (expression,) = selector.get("matchExpressions", [{"values": []}])
        if component not in expression["values"]:
            continue
        for rule in policy["spec"].get("ingress", []):
            if any(p["port"] == port for p in rule.get("ports", [])):
                rules.append(rule)
    return rules


# --- the rendered pod ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "profile", "files", "overrides"), RENDERS, ids=[r[0] for r in RENDERS])
def test_the_sidecar_serves_mlflows_metric_files_read_only_without_a_secret(
    case: str, profile: str, files: tuple[Path, ...], overrides: dict[str, Any]
) -> None:
    objs = _objects(profile, files, overrides)
    port = 9187 if case == "custom-port" else 9100
    spec, server, sidecar = _pod(objs)
    # MLflow's workers write into the shared volume; the sidecar reads the same directory.
    (script,) = server["args"]
    assert f"--expose-prometheus {METRICS_DIR} " in script
    server_mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    sidecar_mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert server_mounts[METRICS_DIR] == {"name": "metrics", "mountPath": METRICS_DIR}
    assert sidecar_mounts[METRICS_DIR] == {"name": "metrics", "mountPath": METRICS_DIR, "readOnly": True}
    assert set(sidecar_mounts) == {METRICS_DIR, "/tmp"}  # not the auth volume, not the artifacts
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["metrics"] == {"name": "metrics", "emptyDir": {"sizeLimit": "64Mi"}}
    # The MLflow image (it carries hybridops), the same locked-down context, no Secret at all: its env is
    # only the telemetry switches of every own container.
    assert sidecar["image"] == server["image"] and sidecar["imagePullPolicy"] == server["imagePullPolicy"]
    assert sidecar["securityContext"] == server["securityContext"]
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["env"] == [
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
        {"name": "DO_NOT_TRACK", "value": "true"},
    ]
    assert "envFrom" not in sidecar and "args" not in sidecar
    assert sidecar["command"] == [
        "python", "-m", "hybridops.observability.multiprocess_metrics",
        "--dir", METRICS_DIR, "--host", "0.0.0.0", "--port", str(port),
    ]  # fmt: skip
    assert sidecar["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert sidecar["resources"] == {
        "requests": {"cpu": "10m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "128Mi"},
    }
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert sidecar["livenessProbe"]["tcpSocket"] == {"port": "metrics"}
    assert sidecar["startupProbe"]["tcpSocket"] == {"port": "metrics"}
    # The Service's metrics port, and the annotation scrapers that read it follow, are the sidecar's.
    ports = find(objs, "Service", "hybridops-mlflow")["spec"]["ports"]
    assert {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"} in ports
    annotations = find(objs, "Deployment", "hybridops-mlflow")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)


@pytest.mark.parametrize(("case", "profile", "files", "overrides"), RENDERS, ids=[r[0] for r in RENDERS])
def test_the_bundled_scrape_of_mlflow_needs_no_login(
    case: str, profile: str, files: tuple[Path, ...], overrides: dict[str, Any]
) -> None:
    objs = _objects(profile, files, overrides)
    port = 9187 if case == "custom-port" else 9100
    job = _job(objs)
    assert job == {"job_name": JOB, "static_configs": [{"targets": [f"hybridops-mlflow:{port}"]}]}
    # No MLflow Secret reaches the Prometheus pod any more.
    spec = find(objs, "Deployment", "hybridops-prometheus")["spec"]["template"]["spec"]
    assert not [v for v in spec["volumes"] if "secret" in v]
    (container,) = spec["containers"]
    assert not [m for m in container["volumeMounts"] if m["mountPath"].startswith("/etc/prometheus/secrets")]
    assert "env" not in container and "envFrom" not in container


def test_no_mlflow_password_reaches_prometheus() -> None:
    objs = objects("hybrid")
    secret = find(objs, "Secret", "hybridops-mlflow-auth")["data"]
    passwords = {key: base64.b64decode(value).decode() for key, value in secret.items()}
    for name in ("ConfigMap", "Deployment"):
        text = yaml.safe_dump(find(objs, name, "hybridops-prometheus"))
        assert "hybridops-mlflow-auth" not in text
        assert not [key for key, password in passwords.items() if password in text]


def test_only_prometheus_reaches_the_metrics_port_and_it_does_not_reach_mlflows_own() -> None:
    objs = objects("hybrid")
    (rule,) = _ingress_to(objs, "mlflow", "metrics")
    assert rule["from"] == [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/instance": "hybridops"},
                "matchExpressions": [
                    {"key": "app.kubernetes.io/component", "operator": "In", "values": ["prometheus"]}
                ],
            }
        }
    ]
    # MLflow's own port: its clients, no longer Prometheus (the default ingressFrom [] opens it to anyone
    # anyway, so narrowed here to see the release's peers).
    narrow = {"networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]}}
    narrowed = tuple(chart.manifests(chart.render("hybrid", [], overrides=narrow)))
    (http,) = _ingress_to(narrowed, "mlflow", "http")
    (release_peers,) = [p for p in http["from"] if "podSelector" in p]
    (components,) = release_peers["podSelector"]["matchExpressions"]
    assert "prometheus" not in components["values"] and "inference" in components["values"]


def test_an_external_prometheus_reaches_the_metrics_port_from_its_namespace_only() -> None:
    objs = objects("hybrid", (EXTERNAL,))
    (rule,) = _ingress_to(objs, "mlflow", "metrics")
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    # Monitoring off: nothing opens the port (the default deny holds).
    off = tuple(chart.manifests(chart.render("hybrid", [], overrides={"monitoring": {"enabled": False}})))
    assert _ingress_to(off, "mlflow", "metrics") == []


@pytest.mark.parametrize("files", [(EXTERNAL,), (EXTERNAL, EXISTING_SECRETS)], ids=["generated", "existing"])
def test_the_mlflow_servicemonitor_scrapes_the_sidecar_without_credentials(files: tuple[Path, ...]) -> None:
    objs = objects("hybrid", files)
    monitor = find(objs, "ServiceMonitor", "hybridops-mlflow")
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    # No Secret for a scrape login is rendered any more.
    assert not [o for o in objs if o["kind"] == "Secret" and "scrape" in o["metadata"]["name"]]


def test_the_monitors_may_live_in_another_namespace() -> None:
    """The MLflow ServiceMonitor refers to no Secret, so it no longer has to sit in the release namespace."""
    overrides = {"monitoring": {"external": {"namespace": "monitoring"}}}
    objs = tuple(chart.manifests(chart.render("hybrid", [EXTERNAL], overrides=overrides)))
    assert find(objs, "ServiceMonitor", "hybridops-mlflow")["metadata"]["namespace"] == "monitoring"


def test_dataops_has_no_mlflow_scrape() -> None:
    assert JOB not in {j["job_name"] for j in _prometheus_config(objects("dataops"))["scrape_configs"]}
    assert not [
        o for o in objects("dataops", (DATAOPS_EXTERNAL,)) if o["metadata"]["name"] == "hybridops-mlflow"
    ]


# --- live: the real MLflow with its rendered start script, the sidecar's rendered command --------------------
@dataclass
class Live:
    cluster: Cluster
    server: Pod
    sidecar: Pod

    def mlflow(self, path: str, auth: tuple[str, str] | None) -> requests.Response:
        headers = {"Host": "hybridops-mlflow:5000"}
        return requests.get(self.server.url() + path, headers=headers, auth=auth, timeout=30)

    def scrape(self) -> requests.Response:
        return requests.get(self.sidecar.url("metrics") + "/metrics", timeout=30)  # no credentials

    def login(self, who: str) -> tuple[str, str]:
        env = self.server.env
        if who == "admin":
            return env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_ADMIN_PASSWORD"]
        return env[f"MLFLOW_{who.upper()}_USERNAME"], env[f"MLFLOW_{who.upper()}_PASSWORD"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    for tool in ("psql", "pg_isready", "initdb", "postgres"):
        require_tool(tool)
    deadline = time.monotonic() + STARTUP_SECONDS
    cluster = Cluster(objects("hybrid"), tmp_path_factory.mktemp("mlflow-metrics"))
    with contextlib.ExitStack() as cleanup:
        try:
            cleanup.enter_context(chart_postgresql(cluster))
        except MissingProgram as exc:
            missing(str(exc), "apt-get install postgresql (Debian package)")
        cleanup.callback(cluster.stop)
        init, server, sidecar = mlflow_pods(cluster)
        cluster.finish(init, cluster.start(init, cluster.command(init)), deadline)
        # The sidecar first, as the kubelet may start it: the emptyDir exists before MLflow writes to it.
        start_mlflow_metrics(cluster, sidecar)
        start_mlflow(cluster, server)
        cluster.wait_started(sidecar, deadline)
        cluster.wait(server, lambda: server.probe("startupProbe") == 200, deadline)
        yield Live(cluster, server, sidecar)


SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"
REQUESTS = re.compile(r"^mlflow_http_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)


def _answered_200(text: str) -> float:
    """MLflow's request counter (labels method and status; /health and /version excluded by MLflow) of the
    GETs answered 200."""
    return sum(
        float(m["value"]) for m in REQUESTS.finditer(text) if m["labels"] == 'method="GET",status="200"'
    )


def test_the_sidecar_serves_mlflows_request_counter_without_a_login(live: Live) -> None:
    # The volume is one directory for both containers, as an emptyDir is.
    assert live.server.mounts[METRICS_DIR] == live.sidecar.mounts[METRICS_DIR]
    assert live.mlflow(SEARCH, live.login("reader")).status_code == 200
    first = live.scrape()
    assert first.status_code == 200, first.text[:500]
    before = _answered_200(first.text)
    assert before >= 1, first.text[:3000]
    for _ in range(3):
        assert live.mlflow(SEARCH, live.login("monitor")).status_code == 200
    after = _answered_200(live.scrape().text)
    assert after == before + 3  # the same counter MLflow's workers increment, read at each scrape
    assert any(p.name.startswith("counter_") for p in Path(live.server.mounts[METRICS_DIR]).iterdir())


def test_mlflows_own_metrics_still_refuse_every_login_but_the_admins(live: Live) -> None:
    """Why the sidecar exists: the basic-auth app fails closed on /metrics for a non-admin."""
    assert live.mlflow("/metrics", None).status_code == 401
    for who in ("reader", "trainer", "monitor"):
        assert live.mlflow("/metrics", live.login(who)).status_code == 403, who
    own = live.mlflow("/metrics", live.login("admin"))
    assert own.status_code == 200 and "mlflow_http_request_total" in own.text


def test_the_sidecar_answers_its_rendered_probes(live: Live) -> None:
    assert live.sidecar.probe("readinessProbe") == 200
    assert live.sidecar.probe("livenessProbe") == 0 and live.sidecar.probe("startupProbe") == 0


def test_the_sidecar_writes_nothing_into_mlflows_metric_files(live: Live) -> None:
    folder = Path(live.sidecar.mounts[METRICS_DIR])
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    for _ in range(3):
        assert live.scrape().status_code == 200
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert not any(live.sidecar.workdir.iterdir())  # nothing written outside its mounts


def _up(url: str, query: str) -> list[dict[str, Any]]:
    body = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    return list(body["data"]["result"])


def test_prometheus_with_the_rendered_job_scrapes_the_sidecar(live: Live, tmp_path: Path) -> None:
    """The rendered job (no basic_auth), its target moved to where the Service's metrics port reaches here."""
    job = _job(live.cluster.objs)
    ((target,),) = [c["targets"] for c in job["static_configs"]]
    job["static_configs"] = [{"targets": [live.cluster.services[target]]}]
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = closed_port()
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
            up: list[dict[str, Any]] = []
            requests_seen: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                with contextlib.suppress(requests.RequestException, KeyError):
                    up = _up(url, f'up{{job="{JOB}"}}')
                    requests_seen = _up(url, f'mlflow_http_request_total{{job="{JOB}"}}')
                if up and requests_seen:
                    break
                time.sleep(0.5)
        finally:
            stop_process(process)
    log_tail = (tmp_path / "prometheus.log").read_text()[-2000:]
    assert [float(r["value"][1]) for r in up] == [1.0], log_tail
    assert requests_seen, log_tail
