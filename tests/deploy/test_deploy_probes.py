"""Scenario 16 (issue 14), the server side: traversal and SSRF probes against the MLflow server exactly as the
chart runs it (its rendered start script: ``--app-name basic-auth``, ``--serve-artifacts`` into the artifacts
volume, ``--allowed-hosts`` from the Service names and the pod IP; PostgreSQL from the chart's Secret),
started on this machine by the rehearsal's kubelet (``hybridops.rehearsal``).

Every probe is sent with the admin login (the most a client can have): what MLflow refuses to the admin it
refuses to every component. What MLflow accepts (an experiment whose artifact location is an absolute path
of the server's disk: "an artifact root on a shared filesystem") is then shown to be harmless to the
platform: the server keeps traversal out, and hybridops' loader refuses such a model before reading it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import requests
from deploy_support import objects
from tools import missing, require_tool

from hybridops.modeling.artifact import log_booster
from hybridops.registry.artifact_guard import UnsafeArtifactLocation
from hybridops.registry.models import load_model, register_candidate
from hybridops.rehearsal.kubelet import POD_IP
from hybridops.rehearsal.postgres import MissingProgram, chart_postgresql
from hybridops.rehearsal.topology import Cluster
from hybridops.rehearsal.workloads import mlflow_pods, start_mlflow
from hybridops.settings import MlflowSettings, Settings

SERVICE_HOST = "hybridops-mlflow:5000"
STARTUP_SECONDS = 300.0


@dataclass
class Mlflow:
    url: str
    admin: tuple[str, str]
    root: Path
    artifacts: Path  # the server's artifacts volume

    def call(
        self, method: str, path: str, host: str = SERVICE_HOST, auth: bool = True, **kw: object
    ) -> requests.Response:
        answer = requests.request(
            method,
            self.url + path,
            headers={"Host": host},
            auth=self.admin if auth else None,
            timeout=30,
            allow_redirects=False,
            **kw,  # type: ignore[arg-type]
        )
        assert b"root:x:0:0" not in answer.content  # /etc/passwd never comes back
        return answer


# A live MLflow server of the chart probed: the slow group CI runs.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mlflow]:
    for tool in ("psql", "pg_isready", "initdb", "postgres"):
        require_tool(tool)
    deadline = time.monotonic() + STARTUP_SECONDS
    root = tmp_path_factory.mktemp("mlflow-probes")
    cluster = Cluster(objects("hybrid"), root)
    with contextlib.ExitStack() as cleanup:
        try:
            cleanup.enter_context(chart_postgresql(cluster))
        except MissingProgram as exc:
            missing(str(exc), "apt-get install postgresql (Debian package)")
        cleanup.callback(cluster.stop)
        init, pod, _ = mlflow_pods(cluster)
        cluster.finish(init, cluster.start(init, cluster.command(init)), deadline)
        start_mlflow(cluster, pod)
        cluster.wait(pod, lambda: pod.probe("startupProbe") == 200, deadline)
        yield Mlflow(
            url=f"http://127.0.0.1:{pod.local_port('http')}",
            admin=(pod.env["MLFLOW_TRACKING_USERNAME"], pod.env["MLFLOW_ADMIN_PASSWORD"]),
            root=root,
            artifacts=pod.mounts["/mlflow/artifacts"],
        )


@pytest.fixture(scope="module")
def run_id(server: Mlflow) -> str:
    experiment = server.call("POST", "/api/2.0/mlflow/experiments/create", json={"name": "probes"}).json()
    run = server.call(
        "POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment["experiment_id"]}
    )
    info = run.json()["run"]["info"]
    assert info["artifact_uri"].startswith("mlflow-artifacts:/"), info
    return str(info["run_id"])


SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"


def test_foreign_host_headers_are_refused(server: Mlflow) -> None:
    for host in (
        "evil.example",
        "169.254.169.254",
        "169.254.169.254:80",
        "hybridops-mlflow.evil.example:5000",
        "[fd00:ec2::254]",
        "10.42.0.18:5000",  # another pod's address
    ):
        answer = server.call("GET", SEARCH, host=host)
        assert answer.status_code == 403 and "DNS rebinding" in answer.text, (host, answer.status_code)
    # The names the chart allows: its Service and the pod's own address (scrapes by IP).
    for host in (SERVICE_HOST, "hybridops-mlflow.hybridops.svc:5000", f"{POD_IP}:5000"):
        assert server.call("GET", SEARCH, host=host).status_code == 200, host
    # MLflow exempts /health from the check (the kubelet's probes); it reads and returns nothing.
    health = server.call("GET", "/health", host="evil.example", auth=False)
    assert health.status_code == 200 and health.text.strip() == "OK"


def test_nothing_is_reachable_without_the_login(server: Mlflow, run_id: str) -> None:
    for path in (SEARCH, f"/get-artifact?path=x&run_id={run_id}", "/api/2.0/mlflow-artifacts/artifacts"):
        assert server.call("GET", path, auth=False).status_code == 401, path


@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow-artifacts/artifacts/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/2.0/mlflow-artifacts/artifacts/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/2.0/mlflow-artifacts/artifacts//etc/passwd",
        "/api/2.0/mlflow-artifacts/artifacts?path=../../../etc",
        "/api/2.0/mlflow-artifacts/artifacts?path=/etc",
        "/get-artifact?path=../../../../etc/passwd&run_id={run}",
        "/get-artifact?path=%2Fetc%2Fpasswd&run_id={run}",
        "/get-artifact?path=..%252f..%252fetc%252fpasswd&run_id={run}",
        "/api/2.0/mlflow/artifacts/list?run_id={run}&path=../../..",
        "/api/2.0/mlflow/artifacts/list?run_id={run}&path=/etc",
        "/model-versions/get-artifact?path=../../../etc/passwd&name=probe&version=1",
        "/static-files/../../../../etc/passwd",
        "/static-files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_artifact_traversal_is_refused(server: Mlflow, run_id: str, path: str) -> None:
    answer = server.call("GET", path.format(run=run_id))
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc",
        "/etc",
        "file:///mlflow/artifacts/../../etc",
        "mlflow-artifacts:/../../etc",
        "mlflow-artifacts:/1/../../../etc",
        "runs:/{run}/../../../../etc",
        "models:/probe/1/../../..",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "s3://bucket/../x",
    ],
)
def test_model_version_sources_outside_the_store_are_refused(
    server: Mlflow, run_id: str, source: str
) -> None:
    server.call("POST", "/api/2.0/mlflow/registered-models/create", json={"name": "probe"})
    answer = server.call(
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        json={"name": "probe", "source": source.format(run=run_id), "run_id": run_id},
    )
    assert answer.status_code == 400 and "INVALID_PARAMETER_VALUE" in answer.text, answer.text[:300]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1:5432/",
        "https://[fd00:ec2::254]/",
        "https://10.0.0.1/hook",
    ],
)
def test_webhooks_cannot_target_link_local_or_private_addresses(server: Mlflow, url: str) -> None:
    answer = server.call(
        "POST",
        "/api/2.0/mlflow/webhooks",
        json={"name": "probe", "url": url, "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}]},
    )
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    assert server.call("GET", "/api/2.0/mlflow/webhooks").json().get("webhooks", []) == []


def test_experiment_locations_on_other_hosts_are_refused(server: Mlflow) -> None:
    for location in ("http://169.254.169.254/x", "https://169.254.169.254/x", "runs:/abc/x"):
        answer = server.call(
            "POST",
            "/api/2.0/mlflow/experiments/create",
            json={"name": f"probe {location}", "artifact_location": location},
        )
        assert answer.status_code == 400, (location, answer.text[:300])


def test_a_model_on_a_local_path_is_refused_by_the_loader_unread(
    server: Mlflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What MLflow accepts: an experiment whose artifact location is an absolute path. A model logged there
    (the client writes it to its own disk) registers normally through the server; hybridops' loader, on
    the server's tracking URI, refuses it before reading: its file is a FIFO that any read would block on."""
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin[1])
    settings = Settings(
        home=tmp_path / "home", mlflow=MlflowSettings(tracking_uri=server.url, model_name="probe_local_path")
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    created = server.call(
        "POST",
        "/api/2.0/mlflow/experiments/create",
        json={"name": "probe-local-path", "artifact_location": outside.as_uri()},
    )
    assert created.status_code == 200, created.text  # accepted by MLflow: an absolute path is a valid root
    x = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 3)), columns=["a", "b", "c"])
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5},
        lgb.Dataset(x, label=(x["a"] > 0).astype(int)),
        num_boost_round=3,
    )
    saved = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.url)
    try:
        with mlflow.start_run(experiment_id=created.json()["experiment_id"]):
            logged = log_booster(booster, input_example=None)
    finally:
        mlflow.set_tracking_uri(saved)
    version = register_candidate(settings, logged.model_uri, logged.run_id, logged.sha256)
    (model_file,) = [p for p in outside.rglob("*") if p.is_file() and p.name.startswith("model")]
    model_file.unlink()
    os.mkfifo(model_file)
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_model(settings, f"probe_local_path/{version}")
            outcome.append(None)
        except BaseException as exc:  # the outcome is the assertion
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(60)
    assert outcome, "load_model is still running: it opened the model file (a FIFO)"
    (error,) = outcome
    assert isinstance(error, UnsafeArtifactLocation), error
    assert "artifact proxy" in str(error) and outside.as_uri() in str(error)
    # Nothing of it went through the server's artifacts volume either.
    assert not [p for p in server.artifacts.rglob("*") if str(logged.run_id) in str(p)]
