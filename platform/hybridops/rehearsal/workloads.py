"""Each workload of the chart started on this machine from its rendered command, env and files.

Every function starts one component with the words of its rendered command that name a listen address
changed to loopback and a free port (and says so); nothing else of the command is changed. A component a
later one names by its Service is exposed before that one is created, because a pod's env and files are
resolved when it is created (:meth:`Cluster.pod`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Any

import yaml

from hybridops.rehearsal.kubelet import Pod, RehearsalError
from hybridops.rehearsal.topology import Cluster, find, listen_locally, replace_once, workload

# The chart's Feast entry point (`python -m hybridops.features.server`), with the metrics listener moved: Feast
# starts it on a fixed port (start_metrics_server's default, checked to be the chart's `metrics`
# containerPort) on every interface.
FEAST_SERVER = ["python", "-m", "hybridops.features.server"]
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
from hybridops.features.server import main
sys.exit(main(sys.argv[1:]))
"""

# Dagster's own run launcher: the daemon asks the user-code server to start each run worker as a process
# of its own (what a K8sRunLauncher Job's pod is in the cluster).
DEFAULT_RUN_LAUNCHER: dict[str, Any] = {
    "module": "dagster._core.launcher.default_run_launcher",
    "class": "DefaultRunLauncher",
}


def start_redis(cluster: Cluster) -> Pod:
    """Redis with the rendered script: its port moved, ``--bind 127.0.0.1`` added."""
    spec, container = workload(cluster.objs, "StatefulSet", "hybridops-redis")
    pod = cluster.pod("redis", spec, container)
    (script,) = cluster.command(pod)[len(container["command"]) :]
    container_port, local_port = pod.ports["redis"]
    script = replace_once(script, f"--port {container_port}", f"--port {local_port}") + " --bind 127.0.0.1"
    cluster.start(pod, [*container["command"], script])
    cluster.expose("hybridops-redis", pod)
    return pod


def wait_redis(cluster: Cluster, pod: Pod, deadline: float) -> None:
    """Until Redis answers its own rendered probe (redis-cli with the password from REDISCLI_AUTH)."""
    shell, flag, probe = pod.container["readinessProbe"]["exec"]["command"]
    probe = replace_once(probe, f"-p {pod.ports['redis'][0]}", f"-p {pod.local_port('redis')}")
    command = [shell, flag, probe]
    cluster.wait(
        pod, lambda: not subprocess.run(command, env=pod.env, capture_output=True).returncode, deadline
    )


def mlflow_pods(cluster: Cluster) -> tuple[Pod, Pod, Pod]:
    """(the migration init container, the server, the metrics sidecar) of MLflow's pod, the sidecar sharing
    the server's volumes (the metric files' emptyDir); the Service is exposed, its metrics port the
    sidecar's."""
    spec, server = workload(cluster.objs, "Deployment", "hybridops-mlflow", container="mlflow")
    _, sidecar = workload(cluster.objs, "Deployment", "hybridops-mlflow", container="metrics")
    (init,) = spec["initContainers"]
    upgrade = cluster.pod("mlflow-db-upgrade", spec, init)
    pod = cluster.pod("mlflow", spec, server)
    metrics = cluster.pod("mlflow-metrics", spec, sidecar, volumes_of="mlflow")
    cluster.expose("hybridops-mlflow", pod, metrics)
    return upgrade, pod, metrics


def start_mlflow_metrics(cluster: Cluster, pod: Pod) -> subprocess.Popen[bytes]:
    """The metrics sidecar's rendered command (exec form), its listen address loopback and its local port."""
    argv = cluster.command(pod)
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(pod.local_port("metrics")))):
        if argv.count(flag) != 1:
            raise RehearsalError(f"expected {flag} once in the metrics sidecar's command: {argv}")
        argv[argv.index(flag) + 1] = value
    return cluster.start(pod, argv)


def start_mlflow(cluster: Cluster, pod: Pod) -> subprocess.Popen[bytes]:
    """MLflow's start script with its listen address, and the local hosts it allows, on the local port."""
    script = cluster.command(pod)[-1]
    container_port, local_port = pod.ports["http"]
    for old, new in (
        ("--host 0.0.0.0", "--host 127.0.0.1"),
        (f"--port {container_port}", f"--port {local_port}"),
        (f"localhost:{container_port}", f"localhost:{local_port}"),
        (f"127.0.0.1:{container_port}", f"127.0.0.1:{local_port}"),
    ):
        script = replace_once(script, old, new)
    return cluster.start(pod, [*pod.container["command"], script])


def feast_pod(cluster: Cluster) -> Pod:
    spec, feast = workload(cluster.objs, "Deployment", "hybridops-feast")
    pod = cluster.pod("feast", spec, feast)
    cluster.expose("hybridops-feast", pod)
    return pod


def start_feast(cluster: Cluster, pod: Pod | None = None, prelude: str = "") -> Pod:
    """Feast's feature server (the chart's ``python -m hybridops.features.server``, Feast's server with the
    reviewed Kubernetes auth), its metrics listener moved to a loopback port.

    ``prelude``: Python run in the server's process before the entry point (a test points the Kubernetes
    client's in-cluster configuration at its own stand-in API server)."""
    pod = pod or feast_pod(cluster)
    argv = listen_locally(cluster.command(pod), pod, "http")
    if argv[: len(FEAST_SERVER)] != FEAST_SERVER:
        raise RehearsalError(f"the Feast container no longer runs `{' '.join(FEAST_SERVER)}`: {argv}")
    wrapper = prelude + _FEAST.format(
        container_port=pod.ports["metrics"][0], local_port=pod.local_port("metrics")
    )
    cluster.start(pod, [sys.executable, "-c", wrapper, *argv[len(FEAST_SERVER) :]])
    return pod


def exporter_pod(cluster: Cluster) -> Pod:
    spec, exporter = workload(cluster.objs, "Deployment", "hybridops-exporter")
    pod = cluster.pod("exporter", spec, exporter)
    cluster.expose("hybridops-exporter", pod)
    return pod


def start_exporter(cluster: Cluster, pod: Pod | None = None) -> Pod:
    """The metrics exporter (a store it cannot read yet is read again at the next scrape)."""
    pod = pod or exporter_pod(cluster)
    script = cluster.command(pod)[-1]
    script = replace_once(script, "--host 0.0.0.0", "--host 127.0.0.1")
    script = replace_once(script, f"--port {pod.ports['metrics'][0]}", f"--port {pod.local_port('metrics')}")
    cluster.start(pod, [*pod.container["command"], script])
    return pod


def inference_pod(cluster: Cluster) -> Pod:
    spec, inference = workload(cluster.objs, "Deployment", "hybridops-inference")
    pod = cluster.pod("inference", spec, inference)
    cluster.expose("hybridops-inference", pod)
    cluster.expose("hybridops-inference-pods", pod)  # the headless Service: each pod, for Prometheus
    return pod


def start_inference(cluster: Cluster, pod: Pod | None = None) -> Pod:
    """The inference service (it loads the champion as it starts, the last good model otherwise)."""
    pod = pod or inference_pod(cluster)
    cluster.start(pod, listen_locally(cluster.command(pod), pod, "http"))
    return pod


def dagster_user_code_pod(cluster: Cluster) -> Pod:
    spec, container = workload(cluster.objs, "Deployment", "hybridops-dagster-user-code")
    pod = cluster.pod("dagster-user-code", spec, container)
    cluster.expose("hybridops-dagster-user-code", pod)
    return pod


def start_dagster_user_code(cluster: Cluster, pod: Pod | None = None) -> Pod:
    """The code location's gRPC server (``dagster api grpc``), listening on loopback."""
    pod = pod or dagster_user_code_pod(cluster)
    argv = cluster.command(pod)
    host, port = argv.index("-h"), argv.index("-p")
    if argv[host + 1] != "0.0.0.0" or int(argv[port + 1]) != pod.ports["grpc"][0]:
        raise RehearsalError(f"unexpected -h/-p in the user-code command {argv}")
    argv[host + 1], argv[port + 1] = "127.0.0.1", str(pod.local_port("grpc"))
    cluster.start(pod, argv)
    return pod


def wait_dagster_user_code(cluster: Cluster, pod: Pod, deadline: float) -> None:
    """Until the server answers its rendered probe (``dagster api grpc-health-check``) on the local port."""
    argv = list(pod.container["startupProbe"]["exec"]["command"])
    argv[argv.index("-p") + 1] = str(pod.local_port("grpc"))

    def healthy() -> bool:
        done = subprocess.run(argv, env=pod.env, cwd=pod.workdir, capture_output=True, timeout=60)
        return done.returncode == 0

    cluster.wait(pod, healthy, deadline)


def dagster_webserver_pod(cluster: Cluster) -> Pod:
    spec, container = workload(cluster.objs, "Deployment", "hybridops-dagster-webserver")
    pod = cluster.pod("dagster-webserver", spec, container)
    cluster.expose("hybridops-dagster-webserver", pod)
    return pod


def start_dagster_webserver(cluster: Cluster, pod: Pod | None = None) -> Pod:
    """The Dagster webserver on the chart's instance and workspace, listening on loopback."""
    pod = pod or dagster_webserver_pod(cluster)
    argv = cluster.command(pod)
    argv[argv.index("--host=0.0.0.0")] = "--host=127.0.0.1"
    argv[argv.index(f"--port={pod.ports['http'][0]}")] = f"--port={pod.local_port('http')}"
    cluster.start(pod, argv)
    return pod


def start_dagster_daemon(cluster: Cluster) -> Pod:
    """The Dagster daemon (run queue, sensors, schedules, automation, run monitoring), as rendered."""
    spec, container = workload(cluster.objs, "Deployment", "hybridops-dagster-daemon")
    pod = cluster.pod("dagster-daemon", spec, container)
    cluster.start(pod, cluster.command(pod))
    return pod


def start_alertmanager(cluster: Cluster) -> Pod:
    """Alertmanager on the chart's routing config (Debian's ``prometheus-alertmanager``), on loopback."""
    spec, container = workload(cluster.objs, "Deployment", "hybridops-alertmanager")
    pod = cluster.pod("alertmanager", spec, container)
    argv = cluster.command(pod)
    listen = f"--web.listen-address=:{pod.ports['http'][0]}"
    argv[argv.index(listen)] = f"--web.listen-address=127.0.0.1:{pod.local_port('http')}"
    binary = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
    if binary is None:
        raise RehearsalError("no alertmanager program: install the Debian package prometheus-alertmanager")
    # The image's entrypoint is the alertmanager binary; the chart gives only its arguments.
    cluster.start(pod, [binary, *argv])
    cluster.expose("hybridops-alertmanager", pod)
    return pod


def start_prometheus(cluster: Cluster) -> Pod:
    """Prometheus on the chart's scrape config, its targets the Services' loopback ports.

    Adapted: the listen address; its own target (``127.0.0.1:9090``); and a ``dns_sd_configs`` job, whose
    headless Service resolves to the ready pods in the cluster, becomes a static list of the pods this
    machine runs behind that Service (one inference replica here). Created after the Services it scrapes are
    exposed.
    """
    spec, container = workload(cluster.objs, "Deployment", "hybridops-prometheus")
    pod = cluster.pod("prometheus", spec, container)
    config_path = pod.mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    own = f"127.0.0.1:{pod.ports['http'][0]}"
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = [
                f"127.0.0.1:{pod.local_port('http')}" if target == own else target
                for target in static["targets"]
            ]
        for dns in job.pop("dns_sd_configs", []):
            targets = []
            for name in dns["names"]:
                local = cluster.services.get(f"{name}:{dns['port']}")
                if local is None:
                    raise RehearsalError(f"Prometheus job {job['job_name']}: no pod behind {name} runs here")
                targets.append(local)
            job.setdefault("static_configs", []).append({"targets": targets})
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = cluster.command(pod)
    listen = f"--web.listen-address=:{pod.ports['http'][0]}"
    argv[argv.index(listen)] = f"--web.listen-address=127.0.0.1:{pod.local_port('http')}"
    # The image's entrypoint is the prometheus binary; the chart gives only its arguments.
    cluster.start(pod, ["prometheus", *argv])
    cluster.expose("hybridops-prometheus", pod)
    return pod


def dagster_instance(cluster: Cluster) -> dict[str, Any]:
    """The rendered dagster.yaml (before this machine's changes)."""
    text = find(cluster.objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"]
    instance: dict[str, Any] = yaml.safe_load(text)
    return instance
