"""Scenario 16 (issue 14), the client side: traversal and SSRF probes against ``hybridops serve`` and the
registry code path that downloads a model (``registry.models.load_model``: the service, ``hybridops model``).

The model location comes from the registry, i.e. from whoever can write to it. Every probe here is a real
registered version in the real (SQLite) MLflow registry of the serving world whose files lie outside the
store's artifact root, or whose location names another host: ``load_model`` refuses it before reading
anything. "Nothing read" is proven with a FIFO in place of the model file: reading it would block forever.
The service's own surface (paths, Host headers, request targets) is probed on a running process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import mlflow
import pytest
import requests
from serving_support import World, service_process

from hybridops.modeling.artifact import SHA_TAG, log_booster
from hybridops.registry.artifact_guard import UnsafeArtifactLocation, check_artifact_location
from hybridops.registry.client import registry_client
from hybridops.registry.models import load_model, register_candidate
from hybridops.settings import MlflowSettings, ServingSettings, Settings

FLIGHT = {
    "carrier": "UA",
    "flight": 1,
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N1",
    "sched_dep": "2013-01-31T16:00:00",
}
FAKE_SHA = "0" * 64


def _probe_settings(world: World, name: str) -> Settings:
    return world.settings.model_copy(
        update={"mlflow": world.settings.mlflow.model_copy(update={"model_name": name})}
    )


def _version_with_source(settings: Settings, source: str) -> str:
    """A registered version whose source (its download location) is ``source``, with a hash tag."""
    client = registry_client(settings)
    name = settings.mlflow.model_name
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        client.create_registered_model(name)
    version = client.create_model_version(name, source, tags={SHA_TAG: FAKE_SHA})
    return str(version.version)


def _load_in_thread(settings: Settings, ref: str, seconds: float = 30) -> BaseException | None:
    """``load_model`` in a daemon thread: a read of a FIFO would block it, so not finishing = it read."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            load_model(settings, ref)
            outcome.append(None)
        except BaseException as exc:  # the outcome is the assertion
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"load_model({ref}) is still running: it opened the model file (a FIFO)"
    return outcome[0]


def test_the_real_champion_still_loads(world: World) -> None:
    loaded = load_model(world.settings, f"{world.settings.mlflow.model_name}@champion")
    check_artifact_location(world.settings, loaded.info.artifact_uri, loaded.info.model_uri)
    assert loaded.info.artifact_uri.startswith(world.settings.mlflow_artifacts_dir.resolve().as_uri())


def test_a_model_logged_outside_the_artifact_root_is_refused_unread(world: World, tmp_path: Path) -> None:
    """An experiment whose artifact location is a folder outside the root (what an MLflow server accepts
    from any client with edit rights): the version is registered normally, with its true hash, and then its
    file is swapped for a FIFO. load_model refuses at once, naming the location."""
    settings = _probe_settings(world, "probe_outside_root")
    outside = tmp_path / "outside"
    outside.mkdir()
    client = registry_client(settings)
    experiment = client.create_experiment("probe-outside-root", artifact_location=outside.as_uri())
    booster = next(iter(world.boosters.values()))
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlflow.models, "infer_pip_requirements", lambda *a, fallback=None, **k: fallback)
        with mlflow.start_run(experiment_id=experiment):
            logged = log_booster(booster, input_example=None)
    version = register_candidate(settings, logged.model_uri, logged.run_id, logged.sha256)
    (model_file,) = [p for p in outside.rglob("*") if p.is_file() and p.name.startswith("model")]
    model_file.unlink()
    os.mkfifo(model_file)
    error = _load_in_thread(settings, f"probe_outside_root/{version}")
    assert isinstance(error, UnsafeArtifactLocation), error
    assert "outside the artifact root" in str(error) and outside.as_uri() in str(error)
    assert "Nothing was downloaded" in str(error)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("file:///etc", "outside the artifact root"),
        ("/etc/passwd", "outside the artifact root"),
        ("{root}/../../../../etc", "'..' segments"),
        ("{root}/%2e%2e/%2e%2e/etc", "'..' segments"),
        ("{root}/%252e%252e/etc", "'..' segments"),
        ("mlflow-artifacts://169.254.169.254/latest/meta-data", "names the host"),
        ("mlflow-artifacts:/1/models", "need an MLflow server"),
        ("http://169.254.169.254/latest/meta-data/iam/", "scheme 'http'"),
        ("https://[fd00:ec2::254]/latest/", "scheme 'https'"),
        ("s3://someone-elses-bucket/model", "scheme 's3'"),
        ("{root}/x?path=/etc/passwd", "query or fragment"),
    ],
)
def test_registry_sources_outside_the_root_are_refused(world: World, source: str, reason: str) -> None:
    settings = _probe_settings(world, "probe_sources")
    uri = source.format(root=settings.mlflow_artifacts_dir.resolve().as_uri())
    version = _version_with_source(settings, uri)
    error = _load_in_thread(settings, f"probe_sources/{version}", seconds=10)
    assert isinstance(error, UnsafeArtifactLocation), error
    assert reason in str(error), str(error)


def test_an_allowed_root_is_the_only_way_out(world: World) -> None:
    settings = _probe_settings(world, "probe_allowed")
    allowed = settings.model_copy(
        update={
            "mlflow": settings.mlflow.model_copy(
                update={"allowed_artifact_roots": ["s3://models-bucket/hybridops"]}
            )
        }
    )
    check_artifact_location(allowed, "s3://models-bucket/hybridops/1/model", "m")
    for uri in (
        "s3://models-bucket/hybridops-other/1/model",  # a sibling prefix, not the root
        "s3://models-bucket/hybridops/../secrets/x",
        "s3://models-bucket/other",
    ):
        with pytest.raises(UnsafeArtifactLocation):
            check_artifact_location(allowed, uri, "m")


def test_server_tracking_takes_only_the_proxy(world: World) -> None:
    server = world.settings.model_copy(
        update={"mlflow": MlflowSettings(tracking_uri="http://hybridops-mlflow:5000")}
    )
    check_artifact_location(server, "mlflow-artifacts:/3/models/m-1/artifacts", "m")
    for uri in (
        world.settings.mlflow_artifacts_dir.resolve().as_uri() + "/3/model",  # the pod's own disk
        "mlflow-artifacts:/3/../../../etc",
        "mlflow-artifacts://attacker.example/3/model",
    ):
        with pytest.raises(UnsafeArtifactLocation):
            check_artifact_location(server, uri, "m")


# --- the service's own surface -------------------------------------------------------------------------------
def _raw(url: str, request: bytes) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def test_the_service_refuses_traversal_ssrf_and_foreign_hosts(world: World, tmp_path: Path) -> None:
    settings = world.with_(
        serving=world.settings.serving.model_copy(update={"allowed_hosts": ["hybridops-inference", "*.svc"]})
    )
    assert isinstance(settings.serving, ServingSettings)
    timings: list[float] = []
    with service_process(settings, tmp_path / "serve.log") as service:
        url = service.url

        def status(method: str, path: str, **kw: object) -> int:
            started = time.perf_counter()
            answer = requests.request(method, url + path, timeout=10, allow_redirects=False, **kw)  # type: ignore[arg-type]
            timings.append(time.perf_counter() - started)
            assert b"root:" not in answer.content  # /etc/passwd never comes back
            return answer.status_code

        # Allowed hosts: loopback (what the start helper polls) and the configured names; nothing else.
        assert status("POST", "/predict", json={"flights": [FLIGHT]}) == 200
        assert status("GET", "/healthz", headers={"Host": "hybridops-inference"}) == 200
        assert status("GET", "/healthz", headers={"Host": "hybridops-inference.hybridops.svc:80"}) == 200
        for host in (
            "evil.example",
            "169.254.169.254",
            "hybridops-inference.evil.example",
            "[fd00:ec2::254]",
        ):
            assert status("GET", "/healthz", headers={"Host": host}) == 400, host
            assert status("POST", "/predict", json={"flights": [FLIGHT]}, headers={"Host": host}) == 400, host
        # Traversal in the path: there are no files to serve, and no path reaches one.
        for path in (
            "/../../../../etc/passwd",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/docs/..%2f..%2fetc%2fpasswd",
            "/static/../../etc/passwd",
            "/predict/../../etc/passwd",
            "/file:///etc/passwd",
        ):
            assert 400 <= status("GET", path) < 500, path
        # Model locations in the request are not an input: unknown fields are refused, never followed.
        for field, value in (("model_uri", "file:///etc/passwd"), ("model", "models:/../../etc")):
            body = {"flights": [FLIGHT], field: value}
            assert status("POST", "/predict", json=body) == 422, field
        # A proxy-style absolute request target for the metadata service answers 4xx and fetches nothing.
        for target in (b"http://169.254.169.254/latest/meta-data/", b"file:///etc/passwd", b"//etc/passwd"):
            code, raw = _raw(url, b"GET " + target + b" HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
            assert 400 <= code < 500, (target, raw[:200])
            code, raw = _raw(url, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert 400 <= code < 500, (target, raw[:200])
        assert status("GET", "/readyz") == 200  # still serving
    print(f"[probes] {len(timings)} HTTP probes, slowest {max(timings) * 1000:.0f} ms")
