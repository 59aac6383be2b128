"""The release on this machine: Dagster's webserver, daemon and user-code server on the chart's dagster.yaml
(PostgreSQL), with Dagster's default run launcher; a run launched through the webserver's GraphQL API is
queued, dequeued by the daemon and executed by a run worker that is a process of its own.

The release is rendered with its sensors stopped (``dagster.automation.enabled: false``): left on, they ingest
the packaged year as soon as the daemon is up, and the launched run waits for the pools those runs hold (one
step per pool) for as long as the machine takes to carry twelve months. The automation is rehearsed by
``test_rehearsal_short``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import psutil
import pytest
import requests
from rehearsal_support import TOOLS_USED
from tools import missing, require_tool

from hybridops.deploy import chart
from hybridops.rehearsal.postgres import MissingProgram
from hybridops.rehearsal.stack import Stack, running_stack

_LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
_RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      status
      eventConnection { events { __typename ... on MessageEvent { message } } }
    }
  }
}
"""

_SENSORS_STOPPED = {"dagster": {"automation": {"enabled": False}}}

# The release started as processes and a run launched through it: minutes; the slow group CI runs.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for tool in TOOLS_USED:
        require_tool(tool)
    try:
        with running_stack(
            tuple(chart.manifests(chart.render("hybrid", overrides=_SENSORS_STOPPED))),
            tmp_path_factory.mktemp("rehearsal"),
        ) as running:
            yield running
    except MissingProgram as exc:
        missing(str(exc), "apt-get install postgresql (Debian package)")


def test_a_run_launched_through_graphql_runs_in_a_run_worker_process(stack: Stack) -> None:
    params = {
        "selector": {
            "repositoryLocationName": "hybridops",
            "repositoryName": "__repository__",
            "jobName": "dimensions",
        },
        "runConfigData": {},
    }
    launched = stack.graphql(_LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    server = psutil.Process(stack.cluster.process("dagster-user-code").pid)
    seen: dict[int, str] = {}  # run workers seen under the user-code server: pid -> command line
    deadline = time.monotonic() + 300
    while True:
        for child in server.children(recursive=True):
            try:
                seen.setdefault(child.pid, " ".join(child.cmdline()))
            except psutil.Error:
                continue
        run = stack.graphql(_RUN, {"runId": run_id})["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        if time.monotonic() > deadline:
            events = [
                event.get("message") or event["__typename"] for event in run["eventConnection"]["events"]
            ]
            pytest.fail(
                f"the run is still {run['status']} after 300 s; its last events:\n" + "\n".join(events[-20:])
            )
        time.sleep(0.5)
    messages = [event.get("message") or "" for event in run["eventConnection"]["events"]]
    assert run["status"] == "SUCCESS", "\n".join(messages[-30:]) + stack.cluster.log("dagster-user-code")
    # The run worker says its pid: a process the user-code server started for this run (Dagster spawns it
    # with multiprocessing), not the server, the webserver or the daemon.
    (pid,) = {
        int(m[1]) for text in messages if (m := re.search(r"Started process for run \(pid: (\d+)\)", text))
    }
    assert pid in seen, (pid, seen)
    long_running = {process.pid for _, process in stack.cluster.processes}
    assert pid not in long_running


def test_prometheus_scrapes_the_release_on_loopback(stack: Stack) -> None:
    """The chart's scrape config, its targets moved to the Services' loopback ports: the exporter, MLflow
    (with its login from the mounted Secret), the inference service, Alertmanager and Prometheus itself
    answer."""
    deadline = time.monotonic() + 120
    while True:
        targets = requests.get(stack.url("prometheus") + "/api/v1/targets", timeout=30).json()["data"]
        health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
        wanted = (
            "hybridops-prometheus",
            "hybridops-exporter",
            "hybridops-mlflow",
            "hybridops-inference",
            "hybridops-alertmanager",
        )
        if all(health.get(job) == "up" for job in wanted) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert all(health.get(job) == "up" for job in wanted), targets["activeTargets"]
