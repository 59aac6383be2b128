"""The whole release running on this machine: every long-running workload of the rendered chart, the
Dagster instance on the chart's PostgreSQL with run workers launched as local processes.

The two changes to the release besides loopback addresses and local folders, both because they need a
Kubernetes API: ``dagster.yaml``'s run launcher is Dagster's :class:`DefaultRunLauncher` (the daemon asks the
user-code server to start each run worker as a process of its own) in place of the ``K8sRunLauncher``; the
run coordinator, its concurrency limit, run monitoring and retries stay as rendered. And the Feast server's
``auth: kubernetes`` (TokenReview, RoleBindings) becomes ``no_auth`` (its OIDC stays as rendered);
``tests/deploy/test_deploy_feast_k8s_auth.py`` runs the Kubernetes auth against a stand-in API server.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from hybridops.rehearsal.kubelet import Pod, RehearsalError
from hybridops.rehearsal.postgres import chart_postgresql
from hybridops.rehearsal.topology import Cluster
from hybridops.rehearsal.workloads import (
    DEFAULT_RUN_LAUNCHER,
    dagster_user_code_pod,
    dagster_webserver_pod,
    exporter_pod,
    feast_pod,
    inference_pod,
    mlflow_pods,
    start_alertmanager,
    start_dagster_daemon,
    start_dagster_user_code,
    start_dagster_webserver,
    start_exporter,
    start_feast,
    start_inference,
    start_mlflow,
    start_mlflow_metrics,
    start_prometheus,
    start_redis,
    wait_dagster_user_code,
    wait_redis,
)

# The long-running workloads: a kubelet restarts them when they exit.
LONG_RUNNING = (
    "redis",
    "mlflow",
    "mlflow-metrics",
    "dagster-user-code",
    "dagster-webserver",
    "dagster-daemon",
    "feast",
    "inference",
    "exporter",
    "alertmanager",
    "prometheus",
)


def _renders(objs: tuple[dict[str, Any], ...], kind: str, name: str) -> bool:
    return any(o["kind"] == kind and o["metadata"]["name"] == name for o in objs)


_DAEMON_HEALTH = """
query { instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }
"""


# Only Feast's Kubernetes auth is replaced: it reviews tokens with an API server this machine does not have.
REHEARSAL_FEAST_AUTH: dict[str, Any] = {"type": "no_auth"}


@dataclass
class Stack:
    """The running release: its pods by name, and when each became ready (seconds from the start)."""

    cluster: Cluster
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def pods(self) -> dict[str, Pod]:
        return self.cluster.pods

    def url(self, pod: str, port: str = "http") -> str:
        return self.pods[pod].url(port)

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        """A query to the Dagster webserver's GraphQL API: its ``data``, or an error with its messages."""
        answer = requests.post(
            self.url("dagster-webserver") + "/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=timeout,
        )
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        if answer.status_code != 200 or body.get("errors"):
            raise RehearsalError(
                f"Dagster GraphQL answered {answer.status_code}: {body or answer.text[:2000]}"
            )
        data: dict[str, Any] = body["data"]
        return data

    def daemons_healthy(self) -> bool:
        try:
            statuses = self.graphql(_DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        except RehearsalError:
            return False  # the webserver is still loading the code location
        return bool(statuses) and all(status["healthy"] for status in statuses if status["required"])


@contextlib.contextmanager
def running_stack(
    objs: tuple[dict[str, Any], ...],
    root: Path,
    progress: Callable[[str], None] = print,
    startup_seconds: float = 420.0,
) -> Iterator[Stack]:
    """Start the release (objects ``objs`` of a render) under ``root``; stop every process on exit, even on
    failure. Ready means: every server answers its rendered startup probe, the user-code server its gRPC
    health check and the daemon reports all its required daemons healthy. The Feast server starts too but
    is not waited for: it serves once the pipeline has applied the feature definitions to the registry (until
    then it exits and :meth:`Cluster.restart_exited` starts it again, as a kubelet would)."""
    started = time.monotonic()
    deadline = started + startup_seconds
    cluster = Cluster(objs, root, dagster_run_launcher=DEFAULT_RUN_LAUNCHER, feast_auth=REHEARSAL_FEAST_AUTH)
    stack = Stack(cluster)

    def mark(what: str) -> None:
        stack.timings[what] = round(time.monotonic() - started, 1)
        progress(f"{what} ready after {stack.timings[what]} s")

    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(chart_postgresql(cluster))
        cleanup.callback(cluster.stop)  # every process, before PostgreSQL goes
        mark("postgresql")
        redis = start_redis(cluster)
        upgrade_pod, mlflow, mlflow_metrics = mlflow_pods(cluster)
        upgrade = cluster.start(upgrade_pod, cluster.command(upgrade_pod))
        # Every Service a pod names is exposed before that pod is created (its env and files are resolved then).
        feast, user_code = feast_pod(cluster), dagster_user_code_pod(cluster)
        webserver, inference, exporter = (
            dagster_webserver_pod(cluster),
            inference_pod(cluster),
            exporter_pod(cluster),
        )
        start_dagster_user_code(cluster, user_code)
        wait_redis(cluster, redis, deadline)
        mark("redis")
        cluster.finish(upgrade_pod, upgrade, deadline)
        start_mlflow(cluster, mlflow)
        start_mlflow_metrics(cluster, mlflow_metrics)
        wait_dagster_user_code(cluster, user_code, deadline)
        mark("dagster-user-code")
        start_dagster_webserver(cluster, webserver)
        daemon = start_dagster_daemon(cluster)
        start_exporter(cluster, exporter)
        start_inference(cluster, inference)
        start_feast(cluster, feast)
        alerting = (
            [start_alertmanager(cluster)] if _renders(objs, "Deployment", "hybridops-alertmanager") else []
        )
        prometheus = start_prometheus(cluster)
        for pod in (mlflow, mlflow_metrics, webserver, inference, exporter, *alerting, prometheus):
            cluster.wait_started(pod, deadline)
            mark(pod.name)
        cluster.wait(daemon, stack.daemons_healthy, deadline)
        mark("dagster-daemon")
        yield stack
