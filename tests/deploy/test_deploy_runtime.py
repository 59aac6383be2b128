"""The chart's containers, run for real on this machine: the command lines, environments and files the chart
renders (the hybrid profile with its generated Secrets), executed by the real programs, and the probes the
rendered Deployments declare sent to the paths and named ports they name.

The kubelet's part and the mapping of Services and volumes onto this machine are the rehearsal's
(``hybridops.rehearsal``: kubelet, topology, workloads, postgres), which says what it adapts and why.

One stack for the module, started in dependency order: PostgreSQL and Redis; MLflow's migration step, then
its server; a Dagster run pod's job (the environment K8sRunLauncher gives run pods) that applies the Feast
definitions to the SQL registry, writes one entity's features to Redis and registers a LightGBM champion
through the MLflow server; the Feast feature server; the inference service and the exporter.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2
import pytest
import requests
import yaml
from deploy_support import find, objects
from tools import missing, require_tool

from hybridops.deploy import chart
from hybridops.rehearsal.kubelet import NAMESPACE, POD_IP, Pod, group_members, secret_data
from hybridops.rehearsal.postgres import MissingProgram, chart_postgresql
from hybridops.rehearsal.stack import REHEARSAL_FEAST_AUTH
from hybridops.rehearsal.topology import Cluster, check, workload
from hybridops.rehearsal.workloads import (
    mlflow_pods,
    start_exporter,
    start_feast,
    start_inference,
    start_mlflow,
    start_redis,
    wait_redis,
)
from hybridops.serving.features import entity_row
from hybridops.serving.schemas import FLIGHT_EXAMPLE
from hybridops.settings import ModelSettings

PROFILE = "hybrid"
STARTUP_SECONDS = 420.0  # a generous bound on a loaded 2-core machine (shared with other work); a healthy stack takes far less

FLIGHT = FLIGHT_EXAMPLE
# One entity of every Feast view, those of the inference API's example flight (UA 1545 EWR-IAH at 05:15),
# keyed by the service's own key builder.
ENTITY = entity_row(
    str(FLIGHT["carrier"]),
    str(FLIGHT["origin"]),
    str(FLIGHT["dest"]),
    str(FLIGHT["tailnum"]),
    datetime.fromisoformat(str(FLIGHT["sched_dep"])),
)
# When the job's values are stamped: a minute before the example flight's as-of time (its departure in UTC
# minus the default horizon), inside every view's ttl, so the service serves them (values stamped after
# the as-of time are refused as known too late).
STAMPED = (
    pd.Timestamp(str(FLIGHT["sched_dep"]), tz="America/New_York").tz_convert("UTC")
    - pd.Timedelta(minutes=ModelSettings().horizon_minutes + 1)
).isoformat()

# The run pod's job: what the pipeline's assets do against the cluster's stores, in a run pod's
# environment (dagster.yaml's run_launcher container_config).
_JOB = """
import json, sys, time
import lightgbm as lgb, mlflow, numpy as np, pandas as pd, requests
from hybridops.features.store import apply_definitions, feature_names, feature_store, load_definitions_module
from hybridops.modeling.artifact import log_booster
from hybridops.registry.models import promote, register_candidate
from hybridops.settings import load_settings

entity = json.loads(sys.argv[1])
settings = load_settings()
store = feature_store(settings)
assert store.config.registry.registry_type == "sql" and store.config.online_store.type == "redis"
apply_definitions(store, settings)
module = load_definitions_module()
stamped = pd.Timestamp(sys.argv[3])
values = {}
for view, features in module.VIEW_FEATURES.items():
    key = module.VIEW_ENTITY[view]
    row = {key: entity[key], "event_timestamp": stamped}
    for i, (name, dtype) in enumerate(features.items()):
        row[name] = values[name] = (i + 1) if str(dtype).startswith("Int") else (i + 1) / 4
    store.write_to_online_store(view, pd.DataFrame([row]))
print("FEAST-APPLIED", flush=True)

deadline = time.monotonic() + float(sys.argv[2])
while True:  # the MLflow server starts meanwhile
    try:
        if requests.get(settings.mlflow_tracking_uri + "/health", timeout=2).ok:
            break
    except requests.RequestException:
        pass
    assert time.monotonic() < deadline, "MLflow never answered"
    time.sleep(0.5)
names = feature_names()
x = pd.DataFrame(np.random.default_rng(0).normal(size=(300, len(names))), columns=names)
y = (x[names[0]] > 0).astype(int)
params = {"objective": "binary", "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5, "seed": 0}
booster = lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=5)
mlflow.set_experiment(settings.mlflow.experiment)
with mlflow.start_run():
    logged = log_booster(booster, input_example=x.head(3))
version = register_candidate(settings, logged.model_uri, logged.run_id, logged.sha256)
promote(settings, version, "chart runtime test")
print("JOB-RESULT " + json.dumps({"values": values, "version": version}))
"""


@dataclass
class Stack:
    cluster: Cluster
    pods: dict[str, Pod]
    job: dict[str, Any]
    admin: tuple[str, str]
    timings: dict[str, float]

    def url(self, pod: str, port: str = "http") -> str:
        return f"http://127.0.0.1:{self.pods[pod].local_port(port)}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for tool in ("redis-server", "redis-cli", "psql", "pg_isready", "initdb", "postgres"):
        require_tool(tool)
    started = time.monotonic()
    deadline = started + STARTUP_SECONDS
    objs = objects(PROFILE)
    # As the rehearsal does: no API server here for Feast's Kubernetes auth (test_deploy_feast_auth runs it).
    cluster = Cluster(objs, tmp_path_factory.mktemp("cluster"), feast_auth=REHEARSAL_FEAST_AUTH)
    pods: dict[str, Pod] = {}
    timings: dict[str, float] = {}

    def mark(what: str) -> None:
        timings[what] = round(time.monotonic() - started, 1)
        print(f"[runtime] {what} at {timings[what]} s", flush=True)

    # The MLflow client of the artifact test, imported while the stack starts: its first request loads the
    # request-header plugins, among them Feast's (an import of feast, seconds of CPU).
    warm = "mlflow.tracking.request_header.registry"
    threading.Thread(target=importlib.import_module, args=(warm,), daemon=True).start()
    with contextlib.ExitStack() as cleanup:
        try:
            pods["postgresql"] = cleanup.enter_context(chart_postgresql(cluster))
        except MissingProgram as exc:
            missing(str(exc), "apt-get install postgresql (Debian package)")
        cleanup.callback(cluster.stop)  # every process, before PostgreSQL goes
        mark("postgresql")
        pods["redis"] = redis = start_redis(cluster)

        # MLflow: the migration step (init container), then the server.
        mlflow_init, mlflow_pod = mlflow_pods(cluster)
        upgrade = cluster.start(mlflow_init, cluster.command(mlflow_init))
        pods["mlflow"] = mlflow_pod
        wait_redis(cluster, redis, deadline)
        mark("redis")

        # The run pod's job: Feast apply and online rows at once, the model once MLflow answers.
        instance = yaml.safe_load(
            find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"]
        )
        launcher = instance["run_launcher"]["config"]["run_k8s_config"]
        (user_code,) = find(objs, "Deployment", "hybridops-dagster-user-code")["spec"]["template"]["spec"][
            "containers"
        ]
        run_pod = cluster.pod(
            "dagster-run", launcher["pod_spec_config"], launcher["container_config"], user_code["image"]
        )
        job = cluster.start(
            run_pod, [sys.executable, "-c", _JOB, json.dumps(ENTITY), str(STARTUP_SECONDS), STAMPED]
        )

        cluster.finish(mlflow_init, upgrade, deadline)
        mark("mlflow db upgrade")
        start_mlflow(cluster, mlflow_pod)

        # Feast's feature server, once the definitions are in the registry.
        cluster.wait(run_pod, lambda: "FEAST-APPLIED" in cluster.log(run_pod.name), deadline)
        mark("feast apply")
        pods["feast"] = start_feast(cluster)
        cluster.wait(mlflow_pod, lambda: mlflow_pod.probe("startupProbe") == 200, deadline)
        mark("mlflow")
        pods["exporter"] = start_exporter(cluster)

        # The inference service, once the champion exists (it loads the model as it starts).
        output = cluster.finish(run_pod, job, deadline)
        (line,) = [line for line in output.splitlines() if line.startswith("JOB-RESULT ")]
        result = json.loads(line.removeprefix("JOB-RESULT "))
        mark("run pod job")
        pods["inference"] = start_inference(cluster)

        for name in ("feast", "inference", "exporter"):
            cluster.wait_started(pods[name], deadline)
            mark(name)
        yield Stack(
            cluster=cluster,
            pods=pods,
            job=result,
            admin=(mlflow_pod.env["MLFLOW_TRACKING_USERNAME"], mlflow_pod.env["MLFLOW_ADMIN_PASSWORD"]),
            timings=timings,
        )


# --- MLflow -------------------------------------------------------------------------------------------------
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"
SERVICE_HOST = "hybridops-mlflow:5000"  # what clients in the cluster send (the Service's name and port)


def _mlflow(stack: Stack, path: str, host: str = SERVICE_HOST, auth: bool = True) -> requests.Response:
    return requests.get(
        stack.url("mlflow") + path,
        headers={"Host": host},
        auth=stack.admin if auth else None,
        timeout=30,
    )


def test_mlflow_requires_the_admin_login_from_the_secret(stack: Stack) -> None:
    assert _mlflow(stack, SEARCH, auth=False).status_code == 401
    wrong = requests.get(
        stack.url("mlflow") + SEARCH,
        headers={"Host": SERVICE_HOST},
        auth=(stack.admin[0], "nope"),
        timeout=30,
    )
    assert wrong.status_code == 401
    answer = _mlflow(stack, SEARCH)
    assert answer.status_code == 200, answer.text
    assert stack.admin[1] == stack.cluster.secret("hybridops-mlflow-auth", "password")
    # The start script's basic_auth.ini: owner-only (umask 077), in the memory-backed auth volume.
    pod = stack.pods["mlflow"]
    config = pod.mounts["/run/mlflow"] / "basic_auth.ini"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    # The users live in the auth database on PostgreSQL (not in a file of the pod), the admin among them.
    url = pod.env["MLFLOW_AUTH_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("select username, is_admin from users order by username")
        assert cursor.fetchall() == [(stack.admin[0], True), ("inference", False)]


def test_mlflow_accepts_the_service_names_and_refuses_other_hosts(stack: Stack) -> None:
    for host in (SERVICE_HOST, f"hybridops-mlflow.{NAMESPACE}.svc:5000", "hybridops-mlflow"):
        assert _mlflow(stack, SEARCH, host=host).status_code == 200, host
    refused = _mlflow(stack, SEARCH, host="attacker.example:5000")
    assert refused.status_code == 403 and "Invalid Host header" in refused.text


def test_mlflow_probes_answer_whatever_the_host(stack: Stack) -> None:
    """The kubelet probes the pod IP without a login: /health is exempt from both checks."""
    pod = stack.pods["mlflow"]
    assert pod.probe("readinessProbe") == 200 and pod.probe("livenessProbe") == 0
    health = pod.container["readinessProbe"]["httpGet"]["path"]
    assert _mlflow(stack, health, host=f"{POD_IP}:5000", auth=False).status_code == 200


def test_mlflow_metrics_answer_the_bundled_prometheus_job(stack: Stack) -> None:
    objs = stack.cluster.objs
    prometheus = yaml.safe_load(find(objs, "ConfigMap", "hybridops-prometheus")["data"]["prometheus.yml"])
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "hybridops-mlflow"]
    ((target,),) = [c["targets"] for c in job["static_configs"]]
    path = job.get("metrics_path", "/metrics")
    assert _mlflow(stack, path, host=target, auth=False).status_code == 401
    # The job's login: its username, and the file the Prometheus pod mounts from the admin Secret.
    spec, container = workload(objs, "Deployment", "hybridops-prometheus")
    prometheus_pod = stack.cluster.pod("prometheus", spec, container)
    password_file = prometheus_pod.relocate(job["basic_auth"]["password_file"])
    login = (job["basic_auth"]["username"], Path(password_file).read_text())
    answer = requests.get(stack.url("mlflow") + path, headers={"Host": target}, auth=login, timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    assert "mlflow_http_request_total" in answer.text, answer.text[:2000]


def test_mlflow_metrics_answer_a_servicemonitor_scrape_of_the_pod_ip(stack: Stack) -> None:
    """External monitoring: the operator's Prometheus scrapes each endpoint of the ServiceMonitor, so the Host
    header is the pod's IP and the port's number; the login comes from the monitor's basicAuth Secrets."""
    external = objects(PROFILE, (chart.CI_DIR / "external-monitoring-values.yaml",))
    monitor = find(external, "ServiceMonitor", "hybridops-mlflow")
    (endpoint,) = monitor["spec"]["endpoints"]
    port = stack.pods["mlflow"].ports[endpoint["port"]][0]
    username = secret_data(find(external, "Secret", endpoint["basicAuth"]["username"]["name"]))
    password_ref = endpoint["basicAuth"]["password"]
    (server,) = find(external, "Deployment", "hybridops-mlflow")["spec"]["template"]["spec"]["containers"]
    (server_password,) = [e for e in server["env"] if e["name"] == "MLFLOW_ADMIN_PASSWORD"]
    assert password_ref == server_password["valueFrom"]["secretKeyRef"]  # the running server's Secret
    login = (username[endpoint["basicAuth"]["username"]["key"]], stack.admin[1])
    answer = requests.get(
        stack.url("mlflow") + endpoint["path"], headers={"Host": f"{POD_IP}:{port}"}, auth=login, timeout=30
    )
    assert answer.status_code == 200, answer.text[:500]
    assert "mlflow_http_request_total" in answer.text
    # Another address is still refused.
    assert _mlflow(stack, endpoint["path"], host=f"10.42.0.18:{port}").status_code == 403


@pytest.mark.parametrize(
    ("pod_ip", "host"), [(POD_IP, f"{POD_IP}:5000"), ("fd00:10:42::17", "[fd00:10:42::17]:5000")]
)
def test_mlflow_start_script_allows_the_pods_own_address(pod_ip: str, host: str, tmp_path: Path) -> None:
    """The rendered start script with ``mlflow`` replaced by a stub that prints its arguments: the pod's
    address (either family, as the Host header spells it) ends the allowed hosts."""
    _, server = workload(objects(PROFILE), "Deployment", "hybridops-mlflow")
    (script,) = server["args"]
    script = script.replace("/run/mlflow/", f"{tmp_path}/")
    (tmp_path / "mlflow").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (tmp_path / "mlflow").chmod(0o755)
    # The step before it (the read-only login, written into the auth database) is tested on the live stack.
    (tmp_path / "python").write_text("#!/bin/sh\ncat >/dev/null\n")
    (tmp_path / "python").chmod(0o755)
    # Every variable the container defines (the script needs no other), the pod's IP as the kubelet sets it.
    env = {item["name"]: "set" for item in server["env"]}
    env.update(PATH=f"{tmp_path}:/usr/bin:/bin", POD_IP=pod_ip)
    args = check([*server["command"], script], env).splitlines()
    allowed = args[args.index("--allowed-hosts") + 1].split(",")
    assert allowed[-1] == host and f"hybridops-mlflow.{NAMESPACE}.svc:5000" in allowed, allowed


def test_mlflow_proxies_artifacts_to_its_destination(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.admin[1])
    client = MlflowClient(tracking_uri=stack.url("mlflow"))
    experiment_id = client.create_experiment("chart-runtime-artifacts")
    experiment = client.get_experiment(experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:/"), experiment.artifact_location
    run = client.create_run(experiment_id)
    (tmp_path / "report.txt").write_text("proxied through the tracking server\n")
    client.log_artifact(run.info.run_id, str(tmp_path / "report.txt"), artifact_path="reports")

    # The file is in the server's artifacts volume, not anywhere the client could write.
    destination = stack.pods["mlflow"].mounts["/mlflow/artifacts"]
    stored = list(destination.rglob("report.txt"))
    assert len(stored) == 1 and run.info.run_id in str(stored[0]), stored
    downloaded = client.download_artifacts(run.info.run_id, "reports/report.txt", str(tmp_path / "back"))
    assert Path(downloaded).read_text() == "proxied through the tracking server\n"
    # The run pod's model went the same way.
    assert list(destination.rglob("model.lgb")), "the registered model is not in the artifacts volume"

    unauthenticated = requests.get(
        stack.url("mlflow") + f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}",
        headers={"Host": SERVICE_HOST},
        timeout=30,
    )
    assert unauthenticated.status_code == 401


# --- Feast ------------------------------------------------------------------------------------------------------
def test_feast_probes_answer(stack: Stack) -> None:
    pod = stack.pods["feast"]
    assert pod.probe("startupProbe") == 200
    assert pod.probe("readinessProbe") == 200
    assert pod.probe("livenessProbe") == 0


def test_feast_serves_the_run_pods_features_from_redis(stack: Stack) -> None:
    """The feature server's feature_store.yaml and the platform's settings name the same registry, project
    and online store: what the run pod wrote is what the server reads."""
    features = [f"origin_weather:{name}" for name in ("temp", "humid")] + [
        "carrier_delay_stats:carrier_flights_7d",
        "plane_profile:plane_seats",
    ]
    answer = requests.post(
        stack.url("feast") + "/get-online-features",
        json={
            "features": features,
            "entities": {key: [ENTITY[key]] for key in ("origin_utc_hour", "carrier", "tailnum")},
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text[:1000]
    body = answer.json()
    got = dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))
    values = stack.job["values"]
    for ref in features:
        name = ref.split(":")[1]
        assert got[name]["values"] == [values[name]], (name, got[name])
        assert got[name]["statuses"] == ["PRESENT"], (name, got[name])


def test_feast_metrics_answer_on_the_metrics_port(stack: Stack) -> None:
    answer = requests.get(stack.url("feast", "metrics") + "/metrics", timeout=30)
    assert answer.status_code == 200 and "feast_" in answer.text, answer.text[:1000]


# --- the inference service and the exporter ---------------------------------------------------------------------
def test_inference_probes_answer_with_the_champion_loaded(stack: Stack) -> None:
    pod = stack.pods["inference"]
    assert pod.probe("startupProbe") == 200 and pod.probe("livenessProbe") == 200
    deadline = time.monotonic() + 30
    while (status := pod.probe("readinessProbe")) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    ready = requests.get(
        stack.url("inference") + pod.container["readinessProbe"]["httpGet"]["path"], timeout=10
    )
    assert status == 200, ready.text
    model = ready.json()["model"]
    assert model == {"name": "flight_delay", "version": stack.job["version"], "source": "registry"}


def test_inference_predicts_with_features_from_redis(stack: Stack) -> None:
    answer = requests.post(stack.url("inference") + "/predict", json={"flights": [FLIGHT]}, timeout=30)
    assert answer.status_code == 200, answer.text[:1000]
    (prediction,) = answer.json()["predictions"]
    assert prediction["degraded"] is False, prediction
    assert 0.0 <= prediction["delay_probability"] <= 1.0


def test_exporter_probes_answer_and_every_source_is_up(stack: Stack) -> None:
    pod = stack.pods["exporter"]
    assert pod.probe("startupProbe") == 0 and pod.probe("livenessProbe") == 0
    assert pod.probe("readinessProbe") == 200
    metrics = requests.get(stack.url("exporter", "metrics") + "/metrics", timeout=60)
    assert metrics.status_code == 200
    up = dict(re.findall(r'^hybridops_exporter_source_up\{source="(\w+)"\} (\S+)$', metrics.text, re.M))
    assert up == {"dagster": "1.0", "warehouse": "1.0", "feast": "1.0", "mlflow": "1.0"}, (
        up,
        stack.cluster.log("exporter"),
    )


def test_nothing_is_written_outside_the_mounts(stack: Stack) -> None:
    """Every pod's working directory stands for its image's read-only root: no program wrote a relative path
    (an ./mlruns, a Feast registry cache...), which a read-only root filesystem would refuse."""
    written = {name: sorted(p.name for p in pod.workdir.iterdir()) for name, pod in stack.pods.items()}
    assert all(not files for files in written.values()), written


def _pss_bytes(group: int) -> int:
    """Proportional set size of every process in a process group (what the pod's cgroup would be charged)."""
    total = 0
    for pid in group_members(group):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)[1]) * 1024  # type: ignore[index]
    return total


def _quantity(text: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    return int(text[:-2]) * units[text[-2:]] if text[-2:] in units else int(text)


def test_every_pod_fits_its_memory_limit(stack: Stack) -> None:
    """Each running pod's processes (all of MLflow's workers, Feast's gunicorn and metrics processes...)
    stay under the rendered memory limit, with the work the tests above gave them."""
    used = {}
    for name, process in stack.cluster.processes:
        if name in stack.pods and process.poll() is None:
            limit = _quantity(stack.pods[name].container["resources"]["limits"]["memory"])
            used[name] = (_pss_bytes(process.pid) // 2**20, limit // 2**20)
    print("memory MiB (used, limit):", used, "started:", stack.timings)
    assert set(used) >= {"mlflow", "feast", "inference", "exporter", "redis"}
    assert all(mib < limit for mib, limit in used.values()), used


# --- scenario 16: the inference service's Host check with the rendered allowed hosts -----------------------
def test_inference_answers_its_own_names_and_refuses_foreign_hosts(stack: Stack) -> None:
    """The rendered HYBRIDOPS_SERVING__ALLOWED_HOSTS ($(POD_IP) expanded as the kubelet does): the pod's IP
    (what probes and Prometheus send) and the Service names are answered, anything else gets 400."""
    url = stack.url("inference")
    for host in (
        f"{POD_IP}:8000",
        "hybridops-inference",
        "hybridops-inference.hybridops.svc.cluster.local:80",
    ):
        assert requests.get(url + "/healthz", headers={"Host": host}, timeout=30).status_code == 200, host
    for host in ("evil.example", "169.254.169.254", "10.42.0.18:8000"):
        answer = requests.get(url + "/healthz", headers={"Host": host}, timeout=30)
        assert answer.status_code == 400 and "serving.allowed_hosts" in answer.json()["detail"], host


def test_the_inference_login_reads_the_registry_and_writes_nothing(stack: Stack) -> None:
    """The inference service logs in as the read-only user the MLflow pod creates (not the admin): it reads
    the champion (the service loaded and serves it), and registering, moving an alias, deleting or changing
    the champion's tags is refused (403). The exporter keeps the admin (see docs/deploy.md)."""
    env = stack.pods["inference"].env
    assert env["MLFLOW_TRACKING_USERNAME"] == "inference"
    assert env["MLFLOW_TRACKING_PASSWORD"] == stack.cluster.secret("hybridops-mlflow-auth", "reader-password")
    assert stack.pods["exporter"].env["MLFLOW_TRACKING_USERNAME"] == stack.admin[0]
    login = ("inference", stack.cluster.secret("hybridops-mlflow-auth", "reader-password"))
    assert login[1] != stack.admin[1]
    version = str(stack.job["version"])

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> int:
        answer = requests.request(
            method,
            stack.url("mlflow") + path,
            json=body,
            headers={"Host": SERVICE_HOST},
            auth=login,
            timeout=30,
        )
        return answer.status_code

    get = "/api/2.0/mlflow/registered-models/alias?name=flight_delay&alias=champion"
    assert call("GET", get) == 200
    refused = {
        "register": call(
            "POST", "/api/2.0/mlflow/model-versions/create", {"name": "flight_delay", "source": "x"}
        ),
        "alias": call(
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            {"name": "flight_delay", "alias": "champion", "version": version},
        ),
        "delete alias": call(
            "DELETE", "/api/2.0/mlflow/registered-models/alias", {"name": "flight_delay", "alias": "champion"}
        ),
        "tag": call(
            "POST",
            "/api/2.0/mlflow/model-versions/set-tag",
            {"name": "flight_delay", "version": version, "key": "k", "value": "v"},
        ),
        "delete version": call(
            "DELETE", "/api/2.0/mlflow/model-versions/delete", {"name": "flight_delay", "version": version}
        ),
        "users": call("POST", "/api/2.0/mlflow/users/create", {"username": "x", "password": "y" * 16}),
    }
    assert set(refused.values()) == {403}, refused
    admin = requests.get(
        stack.url("mlflow") + get, headers={"Host": SERVICE_HOST}, auth=stack.admin, timeout=30
    )
    assert admin.json()["model_version"]["version"] == version  # nothing moved
