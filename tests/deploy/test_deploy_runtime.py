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
from hybridops.rehearsal.kubelet import NAMESPACE, POD_IP, Pod, group_members
from hybridops.rehearsal.postgres import MissingProgram, chart_postgresql
from hybridops.rehearsal.stack import REHEARSAL_FEAST_AUTH
from hybridops.rehearsal.topology import Cluster, check, workload
from hybridops.rehearsal.workloads import (
    mlflow_pods,
    start_exporter,
    start_feast,
    start_inference,
    start_mlflow,
    start_mlflow_metrics,
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
experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment).experiment_id
print("JOB-RESULT " + json.dumps({"values": values, "version": version, "run_id": logged.run_id, "experiment": experiment}))
"""

# The chart's PostgreSQL and MLflow started, restarted and rotated: minutes; the slow group CI runs.
pytestmark = pytest.mark.slow


@dataclass
class Stack:
    cluster: Cluster
    pods: dict[str, Pod]
    job: dict[str, Any]
    job_env: dict[str, str]  # the run pod's environment (dagster.yaml's container_config), as it ran
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

        # MLflow: the migration step (init container), then the server and its metrics sidecar.
        mlflow_init, mlflow_pod, mlflow_metrics = mlflow_pods(cluster)
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
        start_mlflow_metrics(cluster, mlflow_metrics)
        pods["mlflow-metrics"] = mlflow_metrics

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

        for name in ("mlflow-metrics", "feast", "inference", "exporter"):
            cluster.wait_started(pods[name], deadline)
            mark(name)
        yield Stack(
            cluster=cluster,
            pods=pods,
            job=result,
            job_env=run_pod.env,
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
        users = [(stack.admin[0], True), ("inference", False), ("monitor", False), ("trainer", False)]
        assert cursor.fetchall() == users


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


def test_mlflow_metrics_answer_the_bundled_prometheus_job_without_a_login(stack: Stack) -> None:
    """The bundled job's target is the metrics sidecar behind the Service: MLflow's request counters with
    no credentials, while MLflow's own /metrics still refuses the monitor login (a non-admin)."""
    objs = stack.cluster.objs
    prometheus = yaml.safe_load(find(objs, "ConfigMap", "hybridops-prometheus")["data"]["prometheus.yml"])
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "hybridops-mlflow"]
    assert "basic_auth" not in job and "authorization" not in job
    ((target,),) = [c["targets"] for c in job["static_configs"]]
    path = job.get("metrics_path", "/metrics")
    assert _mlflow(stack, SEARCH).status_code == 200  # a request for the counters to show
    answer = requests.get(f"http://{stack.cluster.services[target]}{path}", timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    assert "mlflow_http_request_total" in answer.text, answer.text[:2000]
    monitor = (
        stack.pods["mlflow"].env["MLFLOW_MONITOR_USERNAME"],
        stack.pods["mlflow"].env["MLFLOW_MONITOR_PASSWORD"],
    )
    own = requests.get(
        stack.url("mlflow") + "/metrics", headers={"Host": SERVICE_HOST}, auth=monitor, timeout=30
    )
    assert own.status_code == 403


def test_mlflow_metrics_answer_a_servicemonitor_scrape_without_a_login(stack: Stack) -> None:
    """External monitoring: the ServiceMonitor's endpoint is the sidecar's named port, no basicAuth."""
    external = objects(PROFILE, (chart.CI_DIR / "external-monitoring-values.yaml",))
    (endpoint,) = find(external, "ServiceMonitor", "hybridops-mlflow")["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and "basicAuth" not in endpoint
    answer = requests.get(stack.url("mlflow-metrics", endpoint["port"]) + endpoint["path"], timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    assert "mlflow_http_request_total" in answer.text


@pytest.mark.parametrize(
    ("pod_ip", "host"), [(POD_IP, f"{POD_IP}:5000"), ("fd00:10:42::17", "[fd00:10:42::17]:5000")]
)
def test_mlflow_start_script_allows_the_pods_own_address(pod_ip: str, host: str, tmp_path: Path) -> None:
    """The rendered start script with ``mlflow`` replaced by a stub that prints its arguments: the pod's
    address (either family, as the Host header spells it) ends the allowed hosts."""
    _, server = workload(objects(PROFILE), "Deployment", "hybridops-mlflow", container="mlflow")
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
    the champion's tags is refused (403)."""
    env = stack.pods["inference"].env
    assert env["MLFLOW_TRACKING_USERNAME"] == "inference"
    assert env["MLFLOW_TRACKING_PASSWORD"] == stack.cluster.secret("hybridops-mlflow-auth", "reader-password")
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


# --- scenario 17: the trainer's and the exporter's MLflow logins ------------------------------------------------
MODEL = "flight_delay"


def _as(
    stack: Stack, login: tuple[str, str], method: str, path: str, body: dict[str, Any] | None = None
) -> requests.Response:
    """One REST call to the MLflow server as ``login``, with the Host header of a client in the cluster."""
    return requests.request(
        method,
        stack.url("mlflow") + path,
        json=body if method != "GET" else None,
        params=body if method == "GET" else None,
        headers={"Host": SERVICE_HOST},
        auth=login,
        timeout=30,
    )


def _login(stack: Stack, env: dict[str, str]) -> tuple[str, str]:
    return env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]


def _rerun_start_up(stack: Stack, **env: str) -> None:
    """The MLflow pod's start-up step that writes the logins and grants (the rendered script's ``python`` heredoc,
    after the kubelet's expansion), run again against the stack's auth and tracking databases: what a restart
    of the pod does, with ``env`` standing for changed Secret values or names."""
    pod = stack.pods["mlflow"]
    script = stack.cluster.command(pod)[-1]
    start = script.index("python - <<'PY'\n")
    end = script.index("\nPY\n", start) + len("\nPY\n")
    fragment = script[start:end].replace("python - ", f"{sys.executable} - ", 1)
    check(["sh", "-euc", fragment], {**pod.env, **env})


def _auth_store(stack: Stack) -> Any:
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(stack.pods["mlflow"].env["MLFLOW_AUTH_DATABASE_URI"])
    return store


def test_the_trainer_login_trains_registers_and_promotes(stack: Stack) -> None:
    """The run pod (dagster.yaml's container_config) logs in as the trainer, not the admin, and its job did the
    whole training write path with it: created the experiment, logged a run and a LightGBM model, registered
    the version (tags), moved challenger and champion under the registry lock (creating the lock's
    registered model, then a version of it per hold, deleted at release). The trainer's grants: MANAGE on the model and its lock by name (given by the
    start-up before either existed), MANAGE on the experiment it created."""
    env = stack.job_env
    trainer = _login(stack, env)
    assert trainer == ("trainer", stack.cluster.secret("hybridops-mlflow-auth", "trainer-password"))
    assert trainer[1] not in (
        stack.admin[1],
        stack.cluster.secret("hybridops-mlflow-auth", "reader-password"),
    )
    assert (env["HYBRIDOPS_MLFLOW__EXPERIMENT"], env["HYBRIDOPS_MLFLOW__MODEL_NAME"]) == (MODEL, MODEL)
    version = str(stack.job["version"])
    model = _as(stack, stack.admin, "GET", "/api/2.0/mlflow/registered-models/get", {"name": MODEL}).json()
    assert model["registered_model"]["aliases"] == [{"alias": "champion", "version": version}]
    run = _as(stack, stack.admin, "GET", "/api/2.0/mlflow/runs/get", {"run_id": stack.job["run_id"]}).json()
    assert run["run"]["info"]["experiment_id"] == stack.job["experiment"]
    assert run["run"]["info"]["user_id"] == "trainer"  # MLflow records who logged it
    lock = _as(
        stack,
        stack.admin,
        "GET",
        "/api/2.0/mlflow/registered-models/get",
        {"name": f"{MODEL}.hybridops-lock"},
    )
    assert lock.status_code == 200  # the lock model stays; each hold was a version of it (a ticket)
    tickets = _as(
        stack,
        stack.admin,
        "GET",
        "/api/2.0/mlflow/model-versions/search",
        {"filter": f"name = '{MODEL}.hybridops-lock'"},
    )
    assert tickets.status_code == 200 and tickets.json().get("model_versions", []) == []  # all released

    grants = {(g.name, g.permission) for g in _auth_store(stack).list_registered_model_permissions("trainer")}
    assert grants >= {(MODEL, "MANAGE")}
    experiments = {
        (g.experiment_id, g.permission) for g in _auth_store(stack).list_experiment_permissions("trainer")
    }
    assert (stack.job["experiment"], "MANAGE") in experiments

    # More of what training does, live: a run with a metric and a tag, a version tag, an alias set and removed.
    created = _as(
        stack, trainer, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": stack.job["experiment"]}
    )
    assert created.status_code == 200, created.text
    run_id = created.json()["run"]["info"]["run_id"]
    calls = {
        "metric": (
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            {"run_id": run_id, "key": "auc", "value": 0.7, "timestamp": 0},
        ),
        "run tag": ("POST", "/api/2.0/mlflow/runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"}),
        "version tag": (
            "POST",
            "/api/2.0/mlflow/model-versions/set-tag",
            {"name": MODEL, "version": version, "key": "rehearsal", "value": "yes"},
        ),
        "alias": (
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            {"name": MODEL, "alias": "rehearsal", "version": version},
        ),
        "delete alias": (
            "DELETE",
            "/api/2.0/mlflow/registered-models/alias",
            {"name": MODEL, "alias": "rehearsal"},
        ),
        "end run": ("POST", "/api/2.0/mlflow/runs/update", {"run_id": run_id, "status": "FINISHED"}),
    }
    answers = {name: _as(stack, trainer, *call).status_code for name, call in calls.items()}
    assert set(answers.values()) == {200}, answers


def test_the_trainer_is_refused_outside_its_grants(stack: Stack) -> None:
    """The trainer is no admin: it cannot manage users, and a registered model or experiment someone else made
    is read-only to it (default_permission READ): writing, deleting or granting on them is 403."""
    trainer = _login(stack, stack.job_env)
    other = "someone_elses_model"
    made = _as(stack, stack.admin, "POST", "/api/2.0/mlflow/registered-models/create", {"name": other})
    assert made.status_code == 200, made.text
    experiment = _as(
        stack, stack.admin, "POST", "/api/2.0/mlflow/experiments/create", {"name": "someone_elses"}
    )
    assert experiment.status_code == 200, experiment.text
    experiment_id = experiment.json()["experiment_id"]
    assert (
        _as(stack, trainer, "GET", "/api/2.0/mlflow/registered-models/get", {"name": other}).status_code
        == 200
    )
    refused = {
        "create user": ("POST", "/api/2.0/mlflow/users/create", {"username": "x", "password": "y" * 16}),
        "re-password inference": (
            "PATCH",
            "/api/2.0/mlflow/users/update-password",
            {"username": "inference", "password": "z" * 16},
        ),
        "make itself admin": (
            "PATCH",
            "/api/2.0/mlflow/users/update-admin",
            {"username": "trainer", "is_admin": True},
        ),
        "version": ("POST", "/api/2.0/mlflow/model-versions/create", {"name": other, "source": "x"}),
        "model tag": (
            "POST",
            "/api/2.0/mlflow/registered-models/set-tag",
            {"name": other, "key": "k", "value": "v"},
        ),
        "rename": ("POST", "/api/2.0/mlflow/registered-models/rename", {"name": other, "new_name": "mine"}),
        "delete model": ("DELETE", "/api/2.0/mlflow/registered-models/delete", {"name": other}),
        "grant itself": (
            "POST",
            "/api/2.0/mlflow/registered-models/permissions/create",
            {"name": other, "username": "trainer", "permission": "MANAGE"},
        ),
        "run in it": ("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": experiment_id}),
        "delete experiment": ("POST", "/api/2.0/mlflow/experiments/delete", {"experiment_id": experiment_id}),
    }
    answers = {name: _as(stack, trainer, *call).status_code for name, call in refused.items()}
    assert set(answers.values()) == {403}, answers
    still = _as(stack, stack.admin, "GET", "/api/2.0/mlflow/registered-models/get", {"name": other}).json()
    assert "tags" not in still["registered_model"] and "latest_versions" not in still["registered_model"]


def test_what_the_admin_made_before_is_the_trainers_after_the_mlflow_pod_restarts(stack: Stack) -> None:
    """An upgrade from a release whose trainer was the admin: the experiment and the registered model exist,
    made by the admin, and the trainer may not write them; once the MLflow pod's start-up has run (a
    restart, here the rendered step again, naming them), it trains into both."""
    trainer = _login(stack, stack.job_env)
    name = "made_by_the_admin_before"
    experiment = _as(stack, stack.admin, "POST", "/api/2.0/mlflow/experiments/create", {"name": name})
    assert experiment.status_code == 200, experiment.text
    experiment_id = experiment.json()["experiment_id"]
    assert _as(stack, stack.admin, "POST", "/api/2.0/mlflow/registered-models/create", {"name": name}).ok
    run = ("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": experiment_id})
    version = (
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        {"name": name, "source": f"runs:/{'0' * 32}/model"},
    )
    assert _as(stack, trainer, *run).status_code == 403
    assert _as(stack, trainer, *version).status_code == 403

    _rerun_start_up(stack, MLFLOW_TRAINER_EXPERIMENT=name, MLFLOW_TRAINER_MODELS=json.dumps([name]))
    created = _as(stack, trainer, *run)
    assert created.status_code == 200, created.text
    run_id = created.json()["run"]["info"]["run_id"]
    logged = _as(
        stack,
        trainer,
        "POST",
        "/api/2.0/mlflow/runs/log-metric",
        {"run_id": run_id, "key": "auc", "value": 0.6, "timestamp": 0},
    )
    assert logged.status_code == 200, logged.text
    registered = _as(
        stack,
        trainer,
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        {"name": name, "source": f"runs:/{run_id}/model", "run_id": run_id},
    )
    assert registered.status_code == 200, registered.text
    alias = {"name": name, "alias": "champion", "version": registered.json()["model_version"]["version"]}
    assert _as(stack, trainer, "POST", "/api/2.0/mlflow/registered-models/alias", alias).status_code == 200
    # The run pods' own names are still granted once the start-up runs with the rendered env again.
    _rerun_start_up(stack)
    grants = {g.name for g in _auth_store(stack).list_registered_model_permissions("trainer")}
    assert {MODEL, f"{MODEL}.hybridops-lock", name} <= grants


def test_a_model_not_registered_yet_is_not_found_not_forbidden(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before its first registration a model must read as "not found" to the trainer (it then creates it) and
    to the exporter (no champion yet is no error). MLflow answers get-registered-model with
    RESOURCE_DOES_NOT_EXIST to both, with or without a grant on the name (as the model and its lock are
    granted before their first registration); only get-by-alias answers 403 to every non-admin, as its check
    finds no model to judge (the exporter does not use it). A wrong password stays an error (401), never
    "no model"."""
    trainer = _login(stack, stack.job_env)
    monitor = _login(stack, stack.pods["exporter"].env)
    granted = "granted_not_registered"
    _rerun_start_up(stack, MLFLOW_TRAINER_MODELS=json.dumps([granted, f"{granted}.hybridops-lock"]))
    assert granted in {g.name for g in _auth_store(stack).list_registered_model_permissions("trainer")}
    for name in (granted, f"{granted}.hybridops-lock", "never_registered"):
        for login in (trainer, monitor):
            answer = _as(stack, login, "GET", "/api/2.0/mlflow/registered-models/get", {"name": name})
            assert answer.status_code == 404, (name, login[0], answer.text)
            assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
            search = _as(
                stack, login, "GET", "/api/2.0/mlflow/model-versions/search", {"filter": f"name = '{name}'"}
            )
            assert search.status_code == 200 and search.json().get("model_versions", []) == []
            by_alias = _as(
                stack,
                login,
                "GET",
                "/api/2.0/mlflow/registered-models/alias",
                {"name": name, "alias": "champion"},
            )
            assert by_alias.status_code == 403, by_alias.text  # MLflow's answer to non-admins; pinned here

    # The exporter's own reader with the exporter pod's environment: the model it is told to watch not
    # registered yet is "no champion" (families, no sample), a wrong password an error.
    from hybridops.errors import HybridopsError
    from hybridops.observability.exporter_mlflow import mlflow_metrics
    from hybridops.settings import Settings

    for key, value in stack.pods["exporter"].env.items():
        if key.startswith(("MLFLOW_", "HYBRIDOPS_MLFLOW__")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.url("mlflow"))
    monkeypatch.setenv("HYBRIDOPS_MLFLOW__TRACKING_URI", stack.url("mlflow"))
    monkeypatch.setenv("HYBRIDOPS_MLFLOW__MODEL_NAME", "never_registered")
    families = {f.name: f for f in mlflow_metrics(Settings())}
    assert families["hybridops_model_champion"].samples == []
    assert families["hybridops_model_champion_version"].samples == []
    monkeypatch.setenv("HYBRIDOPS_MLFLOW__MODEL_NAME", MODEL)
    families = {f.name: f for f in mlflow_metrics(Settings())}
    ((sample,),) = [families["hybridops_model_champion_version"].samples]
    assert sample.value == float(stack.job["version"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-" + monitor[1])
    with pytest.raises(HybridopsError, match=r"error code 401"):
        mlflow_metrics(Settings())


def test_the_monitor_login_reads_and_writes_nothing(stack: Stack) -> None:
    """The exporter logs in as ``monitor``: not admin, it reads the registry and the runs; every write is 403
    and nothing moved. ``/metrics`` is 403 too: MLflow's basic-auth app refuses a non-admin every route it has
    no permission check for (MLFLOW_BASIC_AUTH_FAIL_CLOSED, on by default), /metrics among them, which is
    why Prometheus scrapes the metrics sidecar instead (no login). Any login may create a new experiment or registered model
    (MLflow has no create permission while workspaces are off): pinned here as docs/deploy.md states it."""
    env = stack.pods["exporter"].env
    monitor = _login(stack, env)
    assert monitor == ("monitor", stack.cluster.secret("hybridops-mlflow-auth", "monitor-password"))
    assert monitor[1] not in (stack.admin[1], _login(stack, stack.job_env)[1])
    version = str(stack.job["version"])
    reads = {
        "model": ("GET", "/api/2.0/mlflow/registered-models/get", {"name": MODEL}),
        "champion": ("GET", "/api/2.0/mlflow/registered-models/alias", {"name": MODEL, "alias": "champion"}),
        "versions": ("GET", "/api/2.0/mlflow/model-versions/search", {"filter": f"name = '{MODEL}'"}),
        "run": ("GET", "/api/2.0/mlflow/runs/get", {"run_id": stack.job["run_id"]}),
        "experiment": ("GET", "/api/2.0/mlflow/experiments/get", {"experiment_id": stack.job["experiment"]}),
    }
    answers = {name: _as(stack, monitor, *call).status_code for name, call in reads.items()}
    assert set(answers.values()) == {200}, answers
    writes = {
        "register": ("POST", "/api/2.0/mlflow/model-versions/create", {"name": MODEL, "source": "x"}),
        "alias": (
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            {"name": MODEL, "alias": "champion", "version": "1"},
        ),
        "delete alias": (
            "DELETE",
            "/api/2.0/mlflow/registered-models/alias",
            {"name": MODEL, "alias": "champion"},
        ),
        "tag": (
            "POST",
            "/api/2.0/mlflow/model-versions/set-tag",
            {"name": MODEL, "version": version, "key": "k", "value": "v"},
        ),
        "delete version": (
            "DELETE",
            "/api/2.0/mlflow/model-versions/delete",
            {"name": MODEL, "version": version},
        ),
        "run": ("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": stack.job["experiment"]}),
        "run tag": (
            "POST",
            "/api/2.0/mlflow/runs/set-tag",
            {"run_id": stack.job["run_id"], "key": "k", "value": "v"},
        ),
        "users": ("POST", "/api/2.0/mlflow/users/create", {"username": "x", "password": "y" * 16}),
        "metrics": ("GET", "/metrics", None),
    }
    answers = {name: _as(stack, monitor, *call).status_code for name, call in writes.items()}
    assert set(answers.values()) == {403}, answers
    assert _as(stack, stack.admin, "GET", "/metrics").status_code == 200
    created = {
        "experiment": _as(
            stack, monitor, "POST", "/api/2.0/mlflow/experiments/create", {"name": "any_login_may"}
        ),
        "model": _as(
            stack, monitor, "POST", "/api/2.0/mlflow/registered-models/create", {"name": "any_login_may"}
        ),
    }
    assert {name: answer.status_code for name, answer in created.items()} == {"experiment": 200, "model": 200}
    champion = _as(
        stack,
        stack.admin,
        "GET",
        "/api/2.0/mlflow/registered-models/alias",
        {"name": MODEL, "alias": "champion"},
    )
    assert champion.json()["model_version"]["version"] == version and "k" not in {
        tag["key"] for tag in champion.json()["model_version"].get("tags", [])
    }


def test_a_rotated_trainer_password_takes_effect_when_the_mlflow_pod_restarts(stack: Stack) -> None:
    """A new value under the Secret's trainer-password and the MLflow pod's start-up again: the new password
    logs in, the auth database no longer accepts the old one (a worker may accept it from its login cache
    for mlflow.auth.cacheTtlSeconds); the grants are unchanged. Put back afterwards."""
    old = _login(stack, stack.job_env)
    new = "rotated" + old[1][::-1][:25]
    store = _auth_store(stack)
    before = {(g.name, g.permission) for g in store.list_registered_model_permissions("trainer")}
    try:
        _rerun_start_up(stack, MLFLOW_TRAINER_PASSWORD=new)
        assert store.authenticate_user("trainer", new) and not store.authenticate_user("trainer", old[1])
        answer = _as(stack, ("trainer", new), "GET", "/api/2.0/mlflow/registered-models/get", {"name": MODEL})
        assert answer.status_code == 200, answer.text
        assert {(g.name, g.permission) for g in store.list_registered_model_permissions("trainer")} == before
        assert not store.get_user("trainer").is_admin
    finally:
        _rerun_start_up(stack)
    assert store.authenticate_user("trainer", old[1])
