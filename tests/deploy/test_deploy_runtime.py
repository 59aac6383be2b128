"""The chart's containers, run for real on this machine: the command lines, environments and files the chart
renders (the hybrid profile with its generated Secrets), executed by the real programs, and the probes the
rendered Deployments declare sent to the paths and named ports they name.

The kubelet's part is emulated: ``$(VAR)`` expansion in env values and commands, ``secretKeyRef`` and
``configMapRef`` resolved from the rendered Secrets and ConfigMaps, ``fieldRef`` from a pod IP, the image's
``ENV`` (from its Dockerfile), ConfigMap and Secret volumes holding the rendered files. What is adapted to
this machine, and only that: every volume is a local folder (one per PVC claim, shared like the claim),
every Service address (``host:port``) is a loopback port, listeners bind 127.0.0.1 on a free port instead of
0.0.0.0 on the container port (MLflow's allowed ``localhost``/``127.0.0.1`` hosts follow that port), Redis
gets ``--bind 127.0.0.1``, Feast's built-in metrics listener (port 8000, what the chart declares) moves to a
free loopback port, and PostgreSQL is a throwaway server (its image's entrypoint is emulated: the database
``POSTGRES_DB``, then the chart's init script run by ``psql``).

One stack for the module, started in dependency order: PostgreSQL and Redis; MLflow's migration step, then
its server; a Dagster run pod's job (the environment K8sRunLauncher gives run pods) that applies the Feast
definitions to the SQL registry, writes one entity's features to Redis and registers a LightGBM champion
through the MLflow server; the Feast feature server; the inference service and the exporter.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
import yaml
from deploy_postgres import closed_port, throwaway_postgres
from deploy_support import find, objects
from tools import require_tool

from hybridops.deploy import chart
from hybridops.serving.features import entity_row
from hybridops.serving.schemas import FLIGHT_EXAMPLE

PROFILE = "hybrid"
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NAMESPACE = "hybridops"
POD_IP = "10.42.0.17"  # status.podIP of every emulated pod: only ever a Host header here
STARTUP_SECONDS = 240.0  # a generous bound on a loaded 2-core machine; a healthy stack takes far less

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


# --- the kubelet's part ---------------------------------------------------------------------------------
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def k8s_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of ``$(VAR)`` (defined variables only) and ``$$`` in env values and commands."""
    return _VAR_REF.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


def secret_data(obj: dict[str, Any]) -> dict[str, str]:
    data = {key: base64.b64decode(value).decode() for key, value in (obj.get("data") or {}).items()}
    data.update(obj.get("stringData") or {})
    return data


def image_env(image: str) -> dict[str, str]:
    """The ``ENV`` of the image's final stage, read from its Dockerfile (``docker/<repository>.Dockerfile``);
    none for third-party images (PostgreSQL, Redis, Prometheus), whose programs come from this machine."""
    repository = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    dockerfile = REPO / "docker" / f"{repository}.Dockerfile"
    if not dockerfile.exists():
        return {"PATH": os.environ["PATH"]}
    text = dockerfile.read_text().replace("\\\n", " ")
    final_stage = text.rsplit("\nFROM ", 1)[-1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                key, _, value = word.partition("=")
                env[key] = value
    assert env["PATH"].startswith("/opt/venv/bin:"), env["PATH"]
    env["PATH"] = f"{VENV_BIN}:{os.environ['PATH']}"  # the image's virtualenv is this one
    if os.environ.get("PYTHONPATH"):  # ... with the hybridops this test imports (a worktree's, say)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def group_members(group: int) -> list[int]:
    """The live processes of a process group (one that this test started: its leader's pid)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # pgrp; not a zombie
            members.append(int(stat.parent.name))
    return members


# --- the cluster on this machine ------------------------------------------------------------------------
@dataclass
class Pod:
    """One container of a rendered pod on this machine: its volumes are folders, its ports loopback ports."""

    name: str
    container: dict[str, Any]
    env: dict[str, str]
    mounts: dict[str, Path]  # mountPath -> local folder
    ports: dict[str, tuple[int, int]]  # port name -> (containerPort, local port)
    workdir: Path

    def relocate(self, text: str) -> str:
        """Every path under a mount, moved to the mount's local folder."""
        if not self.mounts:
            return text
        pattern = "|".join(re.escape(path) for path in sorted(self.mounts, key=len, reverse=True))
        return re.sub(rf"(?<![\w./-])({pattern})(?=[/\s\"',:;)]|$)", lambda m: str(self.mounts[m[1]]), text)

    def local_port(self, port: str | int) -> int:
        if isinstance(port, str):
            return self.ports[port][1]
        return next(local for container, local in self.ports.values() if container == port)

    def probe(self, kind: str, timeout: float = 10.0) -> int:
        """The container's rendered probe, sent to this machine: an HTTP status, or 0 for a TCP/exec success."""
        spec = self.container[kind]
        if "httpGet" in spec:
            get = spec["httpGet"]
            url = f"http://127.0.0.1:{self.local_port(get['port'])}{get['path']}"
            return requests.get(url, timeout=timeout).status_code
        if "tcpSocket" in spec:
            with socket.create_connection(("127.0.0.1", self.local_port(spec["tcpSocket"]["port"])), timeout):
                return 0
        raise AssertionError(f"{self.name}: no HTTP or TCP {kind}")


@dataclass
class Cluster:
    """The release's objects and this machine: Service addresses map to loopback ports, PVCs to folders."""

    objs: tuple[dict[str, Any], ...]
    root: Path
    services: dict[str, str] = field(default_factory=dict)  # "name:port" -> "127.0.0.1:port"
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def secret(self, name: str, key: str) -> str:
        return secret_data(find(self.objs, "Secret", name))[key]

    def expose(self, service: str, pod: Pod) -> None:
        """The Service's ports now reach the pod's local ports."""
        for port in find(self.objs, "Service", service)["spec"]["ports"]:
            local = pod.local_port(port.get("targetPort", port["port"]))
            self.services[f"{service}:{port['port']}"] = f"127.0.0.1:{local}"

    def to_loopback(self, text: str) -> str:
        for address, local in sorted(self.services.items(), key=lambda item: -len(item[0])):
            text = re.sub(rf"(?<![\w.-]){re.escape(address)}(?![\w.-])", local, text)
        return text

    def dagster_instance_to_loopback(self, text: str) -> str:
        """dagster.yaml names its PostgreSQL by hostname and port apart."""
        instance = yaml.safe_load(text)
        database = instance["storage"]["postgres"]["postgres_db"]
        host, port = self.services[f"{database['hostname']}:{database['port']}"].split(":")
        database.update(hostname=host, port=int(port))
        return yaml.safe_dump(instance, sort_keys=False)

    def pod(
        self,
        name: str,
        spec: dict[str, Any],
        container: dict[str, Any],
        image: str | None = None,
    ) -> Pod:
        """The container ``container`` of pod ``name`` (pod spec ``spec``) on this machine."""
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            folder = self.root / "pvc" / claim if claim else self.root / "pods" / name / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"]] = folder
        ports = {port["name"]: (port["containerPort"], closed_port()) for port in container.get("ports", [])}
        workdir = self.root / "pods" / name / "workdir"
        workdir.mkdir(parents=True, exist_ok=True)
        pod = Pod(name, container, {}, mounts, ports, workdir)
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            files: dict[str, str] = {}
            if "configMap" in volume:
                files = dict(find(self.objs, "ConfigMap", volume["configMap"]["name"])["data"])
            elif "secret" in volume:
                data = secret_data(find(self.objs, "Secret", volume["secret"]["secretName"]))
                items = volume["secret"].get("items")
                files = {item["path"]: data[item["key"]] for item in items} if items else data
            for file_name, content in files.items():
                if file_name == "dagster.yaml":
                    content = self.dagster_instance_to_loopback(content)
                target = mounts[mount["mountPath"]] / file_name
                target.write_text(pod.relocate(self.to_loopback(content)))
        base = image_env(image or container["image"])
        # PATH names this machine's programs, not pod paths: a checkout under /tmp must not be moved into
        # the pod's /tmp emptyDir.
        env = {key: value if key == "PATH" else pod.relocate(value) for key, value in base.items()}
        for source in container.get("envFrom", []):
            assert set(source) == {"configMapRef"}, source
            data = find(self.objs, "ConfigMap", source["configMapRef"]["name"])["data"]
            env.update({key: pod.relocate(self.to_loopback(value)) for key, value in data.items()})
        fields = {"status.podIP": POD_IP, "metadata.namespace": NAMESPACE, "metadata.name": f"{name}-0"}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = k8s_expand(pod.relocate(self.to_loopback(item["value"])), env)
            elif "secretKeyRef" in item["valueFrom"]:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.secret(ref["name"], ref["key"])
            elif "fieldRef" in item["valueFrom"]:
                env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
            else:
                raise AssertionError(f"{name}: unsupported env source {item}")
        pod.env = env
        return pod

    def command(self, pod: Pod) -> list[str]:
        """command + args after the kubelet's ``$(VAR)`` expansion, paths moved to the local mounts."""
        argv = [*pod.container.get("command", []), *pod.container.get("args", [])]
        return [pod.relocate(k8s_expand(word, pod.env)) for word in argv]

    def start(self, pod: Pod, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.root / "logs" / f"{pod.name}.log").open("ab")
        process = subprocess.Popen(
            argv, env=pod.env, cwd=pod.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes.append((pod.name, process))
        return process

    def finish(self, pod: Pod, process: subprocess.Popen[bytes], deadline: float) -> str:
        """Wait for a process that runs to completion (an init container, a job): its output, or a failure."""
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{pod.name} did not finish in time:\n{self.log(pod.name)}") from None
        output = (self.root / "logs" / f"{pod.name}.log").read_text(errors="replace")
        assert process.returncode == 0, f"{pod.name} exited {process.returncode}:\n{output[-6000:]}"
        return output

    def log(self, name: str) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def wait(self, pod: Pod, ready: Callable[[], bool], deadline: float) -> None:
        """Until ``ready()``; fails with the pod's log when its process exits or time runs out."""
        process = next(p for name, p in self.processes if name == pod.name)
        while True:
            try:
                if ready():
                    return
            except (requests.RequestException, OSError):
                pass
            if process.poll() is not None:
                raise AssertionError(f"{pod.name} exited with {process.returncode}:\n{self.log(pod.name)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{pod.name} not ready in time:\n{self.log(pod.name)}")
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM to every process group this test started, then SIGKILL to whatever is left of them."""
        for _, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, process in reversed(self.processes):
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"[runtime] {name} ignored SIGTERM for 10 s", flush=True)
                process.kill()
            process.wait()
            for pid in group_members(process.pid):  # workers and helpers the leader left behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _check(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _workload(
    objs: tuple[dict[str, Any], ...], kind: str, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, its only container) of a workload."""
    spec = find(objs, kind, name)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def _replace_once(text: str, old: str, new: str) -> str:
    """An adaptation the test relies on: fails when the rendered text no longer has ``old``."""
    assert text.count(old) == 1, f"expected {old!r} once in:\n{text}"
    return text.replace(old, new)


def _listen_locally(argv: list[str], pod: Pod, port_name: str) -> list[str]:
    """``--host 0.0.0.0 --port <containerPort>`` (exec form) -> loopback and the pod's local port."""
    out = list(argv)
    host, port = out.index("--host"), out.index("--port")
    assert out[host + 1] == "0.0.0.0" and int(out[port + 1]) == pod.ports[port_name][0], argv
    out[host + 1], out[port + 1] = "127.0.0.1", str(pod.local_port(port_name))
    return out


# --- the programs -----------------------------------------------------------------------------------------
# `feast` as its console script runs it, with the metrics listener moved: Feast starts it on a fixed port
# (start_metrics_server's default, checked to be the chart's `metrics` containerPort) on every interface.
_FEAST = """
import inspect, sys
from wsgiref.simple_server import make_server
import feast.metrics as metrics
declared = inspect.signature(metrics.start_metrics_server).parameters["port"].default
if declared != {container_port}:
    sys.exit(f"Feast's metrics port is {{declared}}, the chart declares {container_port}")
start = metrics.start_metrics_server
metrics.start_metrics_server = lambda store, port=declared, **kw: start(store, port={local_port}, **kw)
metrics._make_metrics_httpd = lambda port, app: make_server(
    "127.0.0.1", port, app, handler_class=metrics._QuietWSGIRequestHandler
)
from feast.cli.cli import cli
sys.exit(cli())
"""

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
now = pd.Timestamp.now(tz="UTC").floor("s")
values = {}
for view, features in module.VIEW_FEATURES.items():
    key = module.VIEW_ENTITY[view]
    row = {key: entity[key], "event_timestamp": now}
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


def _postgres(cluster: Cluster, stack_pods: dict[str, Pod]) -> Iterator[None]:
    """PostgreSQL with the rendered user, password (from the Secret) and init: databases for every client."""
    objs = cluster.objs
    spec, container = _workload(objs, "StatefulSet", "hybridops-postgresql")
    env = {item["name"]: item.get("value", "") for item in container["env"]}
    password = cluster.secret("hybridops-postgresql", "password")
    with throwaway_postgres(user=env["POSTGRES_USER"], password=password) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        pod = cluster.pod("postgresql", spec, container)
        container_port = pod.ports["postgresql"][0]
        pod.ports["postgresql"] = (container_port, port)
        stack_pods["postgresql"] = pod
        cluster.expose("hybridops-postgresql", pod)
        # The image's entrypoint on an empty data directory: POSTGRES_DB, then /docker-entrypoint-initdb.d/*
        # (it connects over the local socket; here over TCP with the password).
        local = {
            **pod.env,
            "POSTGRES_USER": env["POSTGRES_USER"],
            "POSTGRES_DB": env["POSTGRES_DB"],
            "PGHOST": "127.0.0.1",
            "PGPORT": str(port),
            "PGPASSWORD": password,
        }
        _check([
            "psql", "-v", "ON_ERROR_STOP=1", "--username", env["POSTGRES_USER"], "--dbname", "postgres",
            "-c", f'CREATE DATABASE "{env["POSTGRES_DB"]}"',
        ], local)  # fmt: skip
        _check(["sh", str(pod.mounts["/docker-entrypoint-initdb.d"] / "create-databases.sh")], local)
        # The rendered startup probe (pg_isready) against the local port.
        shell, flag, probe = container["startupProbe"]["exec"]["command"]
        _check([shell, flag, _replace_once(probe, f"-p {container_port}", f"-p {port}")], local)
        yield


def _redis(cluster: Cluster, pods: dict[str, Pod]) -> Pod:
    spec, container = _workload(cluster.objs, "StatefulSet", "hybridops-redis")
    pod = cluster.pod("redis", spec, container)
    (script,) = container["args"]
    script = pod.relocate(k8s_expand(script, pod.env))
    container_port, local_port = pod.ports["redis"]
    script = _replace_once(script, f"--port {container_port}", f"--port {local_port}") + " --bind 127.0.0.1"
    cluster.start(pod, [*container["command"], script])
    cluster.expose("hybridops-redis", pod)
    pods["redis"] = pod
    return pod


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for tool in ("redis-server", "redis-cli", "psql", "pg_isready", "initdb", "postgres"):
        require_tool(tool)
    started = time.monotonic()
    deadline = started + STARTUP_SECONDS
    objs = objects(PROFILE)
    root = tmp_path_factory.mktemp("cluster")
    (root / "logs").mkdir()
    cluster = Cluster(objs, root)
    pods: dict[str, Pod] = {}
    timings: dict[str, float] = {}

    def mark(what: str) -> None:
        timings[what] = round(time.monotonic() - started, 1)
        print(f"[runtime] {what} at {timings[what]} s", flush=True)

    # The MLflow client of the artifact test, imported while the stack starts: its first request loads the
    # request-header plugins, among them Feast's (an import of feast, seconds of CPU).
    warm = "mlflow.tracking.request_header.registry"
    threading.Thread(target=importlib.import_module, args=(warm,), daemon=True).start()
    postgres = _postgres(cluster, pods)
    try:
        next(postgres)
        mark("postgresql")
        redis = _redis(cluster, pods)

        # MLflow: the migration step (init container), then the server.
        spec, server = _workload(objs, "Deployment", "hybridops-mlflow")
        (init,) = spec["initContainers"]
        mlflow_init = cluster.pod("mlflow-db-upgrade", spec, init)
        upgrade = cluster.start(mlflow_init, cluster.command(mlflow_init))
        mlflow_pod = cluster.pod("mlflow", spec, server)
        pods["mlflow"] = mlflow_pod
        cluster.expose("hybridops-mlflow", mlflow_pod)

        # Redis answers its own rendered probe (redis-cli with the password from REDISCLI_AUTH).
        shell, flag, probe = redis.container["readinessProbe"]["exec"]["command"]
        probe = _replace_once(probe, f"-p {redis.ports['redis'][0]}", f"-p {redis.local_port('redis')}")
        cluster.wait(
            redis, lambda: not subprocess.run([shell, flag, probe], env=redis.env).returncode, deadline
        )
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
        job = cluster.start(run_pod, [sys.executable, "-c", _JOB, json.dumps(ENTITY), str(STARTUP_SECONDS)])

        cluster.finish(mlflow_init, upgrade, deadline)
        mark("mlflow db upgrade")
        script = cluster.command(mlflow_pod)[-1]
        container_port = mlflow_pod.ports["http"][0]
        local_port = mlflow_pod.local_port("http")
        for old, new in (
            ("--host 0.0.0.0", "--host 127.0.0.1"),
            (f"--port {container_port}", f"--port {local_port}"),
            (f"localhost:{container_port}", f"localhost:{local_port}"),
            (f"127.0.0.1:{container_port}", f"127.0.0.1:{local_port}"),
        ):
            script = _replace_once(script, old, new)
        cluster.start(mlflow_pod, [*server["command"], script])

        # Feast's feature server, once the definitions are in the registry.
        cluster.wait(run_pod, lambda: "FEAST-APPLIED" in cluster.log(run_pod.name), deadline)
        mark("feast apply")
        spec, feast = _workload(objs, "Deployment", "hybridops-feast")
        feast_pod = cluster.pod("feast", spec, feast)
        pods["feast"] = feast_pod
        argv = _listen_locally(cluster.command(feast_pod), feast_pod, "http")
        assert argv[0] == "feast", argv
        wrapper = _FEAST.format(
            container_port=feast_pod.ports["metrics"][0], local_port=feast_pod.local_port("metrics")
        )
        cluster.start(feast_pod, [sys.executable, "-c", wrapper, *argv[1:]])

        cluster.wait(mlflow_pod, lambda: mlflow_pod.probe("startupProbe") == 200, deadline)
        mark("mlflow")

        # The exporter (a store it cannot read yet is read again at the next scrape).
        spec, exporter = _workload(objs, "Deployment", "hybridops-exporter")
        exporter_pod = cluster.pod("exporter", spec, exporter)
        pods["exporter"] = exporter_pod
        script = cluster.command(exporter_pod)[-1]
        script = _replace_once(script, "--host 0.0.0.0", "--host 127.0.0.1")
        script = _replace_once(
            script,
            f"--port {exporter_pod.ports['metrics'][0]}",
            f"--port {exporter_pod.local_port('metrics')}",
        )
        cluster.start(exporter_pod, [*exporter["command"], script])

        # The inference service, once the champion exists (it loads the model as it starts).
        output = cluster.finish(run_pod, job, deadline)
        (line,) = [line for line in output.splitlines() if line.startswith("JOB-RESULT ")]
        result = json.loads(line.removeprefix("JOB-RESULT "))
        mark("run pod job")
        spec, inference = _workload(objs, "Deployment", "hybridops-inference")
        inference_pod = cluster.pod("inference", spec, inference)
        pods["inference"] = inference_pod
        cluster.start(inference_pod, _listen_locally(cluster.command(inference_pod), inference_pod, "http"))

        for name in ("feast", "inference", "exporter"):
            pod = pods[name]
            cluster.wait(pod, lambda pod=pod: pod.probe("startupProbe") in (0, 200), deadline)
            mark(name)
        yield Stack(
            cluster=cluster,
            pods=pods,
            job=result,
            admin=(mlflow_pod.env["MLFLOW_TRACKING_USERNAME"], mlflow_pod.env["MLFLOW_ADMIN_PASSWORD"]),
            timings=timings,
        )
    finally:
        cluster.stop()
        postgres.close()


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
        cursor.execute("select username, is_admin from users")
        assert cursor.fetchall() == [(stack.admin[0], True)]


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
    spec, container = _workload(objs, "Deployment", "hybridops-prometheus")
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
    _, server = _workload(objects(PROFILE), "Deployment", "hybridops-mlflow")
    (script,) = server["args"]
    script = script.replace("/run/mlflow/", f"{tmp_path}/")
    (tmp_path / "mlflow").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (tmp_path / "mlflow").chmod(0o755)
    # Every variable the container defines (the script needs no other), the pod's IP as the kubelet sets it.
    env = {item["name"]: "set" for item in server["env"]}
    env.update(PATH=f"{tmp_path}:/usr/bin:/bin", POD_IP=pod_ip)
    args = _check([*server["command"], script], env).splitlines()
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
