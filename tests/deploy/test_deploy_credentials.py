"""Scenario 17 (issue 14): the credential sweep of the chart's defaults, rendered by the real Helm engine and
asserted field by field, and live where a component runs here (redis-server and Prometheus with the
rendered command lines and Secrets, started by the rehearsal's kubelet).

What it proves: no default or shared password (every credential is generated per release, distinct, kept on
upgrade, or named by an existing Secret); Redis refuses clients without the password while Feast and the
inference service's reader connect with the chart's connection string; Prometheus' admin and lifecycle APIs
are off; each container gets only its own MLflow login (the admin's password only the MLflow pod's and,
for /metrics, Prometheus'); the
read-write Dagster UI is unreachable from outside the release by default and the chart has no
Ingress (nothing public unless a user adds it, or enables the sign-in proxies' own: test_deploy_ui_proxy.py);
services are ClusterIP.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from deploy_support import CASES, EXISTING_SECRETS, containers, find, objects, pod_specs
from tools import require_tool

from hybridops.deploy import chart
from hybridops.deploy.reachability import unreachable
from hybridops.deploy.render_connections import Connection
from hybridops.processes import stop as stop_process
from hybridops.registry.lock import lock_name
from hybridops.rehearsal.kubelet import closed_port
from hybridops.rehearsal.topology import Cluster
from hybridops.rehearsal.workloads import feast_pod, start_redis, wait_redis

GENERATED = re.compile(r"^[A-Za-z0-9]{32}$")
CREDENTIAL_KEY = re.compile(r"password|secret|token|apikey|api_key|credential", re.IGNORECASE)


def _generated(objs: tuple[dict[str, Any], ...]) -> dict[tuple[str, str], str]:
    """(Secret, key) -> decoded value of every generated credential (``data``, not rendered ``stringData``)."""
    return {
        (o["metadata"]["name"], key): base64.b64decode(value).decode()
        for o in objs
        if o["kind"] == "Secret"
        for key, value in (o.get("data") or {}).items()
    }


# --- no default or shared passwords ---------------------------------------------------------------------------
def test_values_carry_no_credential_literal() -> None:
    """values.yaml names Secrets, never a password: every credential-like key is unset (null)."""
    values = yaml.safe_load((chart.CHART_DIR / "values.yaml").read_text())

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if CREDENTIAL_KEY.search(str(key)) and not re.search(r"existing|Key$|_key$|File$", str(key)):
                    assert value in (None, "", [], {}), (where, value)
                walk(value, where)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(values, "")


@pytest.mark.parametrize("profile", chart.profiles())
def test_every_credential_is_generated_per_release_distinct_and_kept(profile: str) -> None:
    first, second = (tuple(chart.manifests(chart.render(profile, []))) for _ in range(2))
    one, two = _generated(first), _generated(second)
    assert one and set(one) == set(two)
    for where, value in one.items():
        assert GENERATED.match(value), where  # 32 random letters and digits (~190 bits)
        assert two[where] != value, where  # a new release gets new credentials
    assert len(set(one.values())) == len(one), "two components share a generated credential"
    for name in {name for name, _ in one}:
        secret = find(first, "Secret", name)
        # kept across upgrades (lookup) and uninstalls (a reinstall finds the data the volumes were made with)
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
    helper = (chart.CHART_DIR / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret" .ctx.Release.Namespace .name' in helper


def test_existing_secrets_replace_every_generated_one() -> None:
    assert _generated(objects("hybrid", (EXISTING_SECRETS,))) == {}


@pytest.mark.parametrize(("case", "profile", "files"), CASES, ids=[c[0] for c in CASES])
def test_every_password_a_container_gets_is_a_secret_reference(case: str, profile: str, files: tuple) -> None:
    objs = objects(profile, files)
    for name, _, spec in pod_specs(objs):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            for env in container.get("env", []):
                if CREDENTIAL_KEY.search(env["name"]) and not env["name"].endswith("_FILE"):
                    assert "secretKeyRef" in env.get("valueFrom", {}), (name, env["name"])


# --- one MLflow login per component ------------------------------------------------------------------------------
# Which key of the MLflow auth Secret each container reads, by login: the admin's only the MLflow server's own
# (its start-up creates the others and their grants); never Prometheus, which scrapes the MLflow pod's metrics
# sidecar without a login (test_deploy_mlflow_metrics.py), nor that sidecar; every client its component's
# login and nothing more.
MLFLOW_KEYS = {"admin": "password", "reader": "reader-password", "trainer": "trainer-password"}
MLFLOW_KEYS |= {"monitor": "monitor-password", "flask": "flask-secret-key"}
MLFLOW_LOGINS = {
    "Deployment/hybridops-mlflow/mlflow": {"admin", "reader", "trainer", "monitor", "flask"},
    "Deployment/hybridops-dagster-user-code/user-code": {"trainer"},
    "run pod (dagster.yaml run_launcher)": {"trainer"},
    "Deployment/hybridops-inference/inference": {"reader"},
    "Deployment/hybridops-exporter/exporter": {"monitor"},
}
MLFLOW_USERS = {"reader": "inference", "trainer": "trainer", "monitor": "monitor"}


def _mlflow_secret_keys(objs: tuple[dict[str, Any], ...], secret: str) -> dict[str, set[str]]:
    """Each container (and the run pods' container of dagster.yaml, and each pod volume) -> the keys of the
    MLflow auth Secret it reads."""
    found: dict[str, set[str]] = {}

    def env_keys(where: str, env: list[dict[str, Any]]) -> None:
        for item in env:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] == secret:
                found.setdefault(where, set()).add(ref["key"])

    for name, _, spec in pod_specs(objs):
        for container in containers(spec):
            env_keys(f"{name}/{container['name']}", container.get("env", []))
            assert not [
                e for e in container.get("envFrom", []) if e.get("secretRef", {}).get("name") == secret
            ], name  # never the whole Secret
        for volume in spec.get("volumes", []):
            if volume.get("secret", {}).get("secretName") == secret:
                found.setdefault(f"{name} (volume {volume['name']})", set()).update(
                    item["key"]
                    for item in volume["secret"]["items"]  # items always: never every key
                )
    instance = yaml.safe_load(find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"])
    run_pod = instance["run_launcher"]["config"]["run_k8s_config"]["container_config"]
    env_keys("run pod (dagster.yaml run_launcher)", run_pod["env"])
    return found


def _mlflow_server(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The MLflow server container (the pod's other one is the login-free metrics sidecar)."""
    spec = find(objs, "Deployment", "hybridops-mlflow")["spec"]["template"]["spec"]
    (server,) = [c for c in spec["containers"] if c["name"] == "mlflow"]
    return server


@pytest.mark.parametrize("files", [(), (EXISTING_SECRETS,)], ids=["generated", "existing"])
def test_each_container_gets_only_its_own_mlflow_login(files: tuple[Path, ...]) -> None:
    objs = objects("hybrid", files)
    secret = "hybridops-mlflow-admin" if files else "hybridops-mlflow-auth"
    found = _mlflow_secret_keys(objs, secret)
    assert found == {
        where: {MLFLOW_KEYS[login] for login in logins} for where, logins in MLFLOW_LOGINS.items()
    }
    if not files:  # the generated Secret holds one password per login and the Flask key, nothing else
        assert set(find(objs, "Secret", secret)["data"]) == set(MLFLOW_KEYS.values())
    # Each client's username is the one its password belongs to; the MLflow pod creates it with that password.
    server = _mlflow_server(objs)
    server_env = {e["name"]: e for e in server["env"]}
    for login, user in MLFLOW_USERS.items():
        assert server_env[f"MLFLOW_{login.upper()}_USERNAME"]["value"] == user
        assert server_env[f"MLFLOW_{login.upper()}_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": secret,
            "key": MLFLOW_KEYS[login],
        }
    clients = [c for _, _, spec in pod_specs(objs) for c in containers(spec) if c["name"] != "mlflow"]
    instance = yaml.safe_load(find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"])
    clients.append(instance["run_launcher"]["config"]["run_k8s_config"]["container_config"])
    logins = set()
    for container in clients:
        env = {e["name"]: e for e in container.get("env", [])}
        if "MLFLOW_TRACKING_USERNAME" in env:
            key = env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
            (login,) = [name for name, k in MLFLOW_KEYS.items() if k == key]
            assert env["MLFLOW_TRACKING_USERNAME"]["value"] == MLFLOW_USERS[login], container.get("name")
            logins.add(login)
    assert logins == {"trainer", "reader", "monitor"}
    prometheus = yaml.safe_load(find(objs, "ConfigMap", "hybridops-prometheus")["data"]["prometheus.yml"])
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "hybridops-mlflow"]
    assert "basic_auth" not in job  # the metrics sidecar: no login to hand Prometheus


def test_the_mlflow_logins_and_keys_are_values() -> None:
    """Usernames and existing-Secret keys of the three logins come from values, the render follows them."""
    overrides = {
        "mlflow": {
            "auth": {
                "existingSecret": "mine",
                "readerUsername": "svc-read",
                "trainerUsername": "svc-train",
                "monitorUsername": "svc-mon",
                "existingSecretReaderKey": "r",
                "existingSecretTrainerKey": "t",
                "existingSecretMonitorKey": "m",
            }
        }
    }
    objs = tuple(chart.manifests(chart.render("hybrid", [], overrides=overrides)))
    found = _mlflow_secret_keys(objs, "mine")
    assert found["Deployment/hybridops-dagster-user-code/user-code"] == {"t"}
    assert found["run pod (dagster.yaml run_launcher)"] == {"t"}
    assert found["Deployment/hybridops-inference/inference"] == {"r"}
    assert found["Deployment/hybridops-exporter/exporter"] == {"m"}
    server = _mlflow_server(objs)
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert (
        env["MLFLOW_READER_USERNAME"],
        env["MLFLOW_TRAINER_USERNAME"],
        env["MLFLOW_MONITOR_USERNAME"],
    ) == (
        "svc-read",
        "svc-train",
        "svc-mon",
    )


def test_the_trainer_grants_name_the_pods_experiment_and_model_and_the_alias_lock() -> None:
    """What the MLflow pod grants the trainer is what the run pods write: the experiment and registered model
    they read from their environment (mlflow.experiment, mlflow.modelName) and that model's lock."""
    objs = tuple(
        chart.manifests(
            chart.render(
                "hybrid", [], overrides={"mlflow": {"experiment": "delays", "modelName": "delay_model"}}
            )
        )
    )
    server = _mlflow_server(objs)
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MLFLOW_TRAINER_EXPERIMENT"] == "delays"
    assert json.loads(env["MLFLOW_TRAINER_MODELS"]) == ["delay_model", lock_name("delay_model")]
    instance = yaml.safe_load(find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"])
    run_pod = instance["run_launcher"]["config"]["run_k8s_config"]["container_config"]
    (user_code,) = find(objs, "Deployment", "hybridops-dagster-user-code")["spec"]["template"]["spec"][
        "containers"
    ]
    for container in (run_pod, user_code):
        client = {e["name"]: e.get("value") for e in container["env"]}
        assert client["HYBRIDOPS_MLFLOW__EXPERIMENT"] == "delays"
        assert client["HYBRIDOPS_MLFLOW__MODEL_NAME"] == "delay_model"


# --- Redis requires AUTH -----------------------------------------------------------------------------------------
def test_redis_is_rendered_with_requirepass_and_every_client_sends_it() -> None:
    objs = objects("hybrid")
    (redis,) = find(objs, "StatefulSet", "hybridops-redis")["spec"]["template"]["spec"]["containers"]
    (script,) = redis["args"]
    words = shlex.split(script)
    assert words[words.index("--requirepass") + 1] == "$REDIS_PASSWORD"
    assert words[words.index("--protected-mode") + 1] == "yes"
    env = {e["name"]: e for e in redis["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "hybridops-redis",
        "key": "password",
    }
    feast_yaml = yaml.safe_load(find(objs, "Secret", "hybridops-feast")["stringData"]["feature_store.yaml"])
    assert feast_yaml["online_store"]["connection_string"].endswith(",password=${FEAST_REDIS_PASSWORD}")
    for name, _, spec in pod_specs(objs):
        for container in spec["containers"]:
            for item in container.get("env", []):
                if item["name"].endswith("ONLINE_STORE__CONNECTION_STRING"):
                    assert item["value"].endswith(",password=$(REDIS_PASSWORD)"), name


@pytest.fixture(scope="module")
def redis_pods(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_tool("redis-server")
    require_tool("redis-cli")
    cluster = Cluster(objects("hybrid"), tmp_path_factory.mktemp("redis-auth"))
    try:
        redis = start_redis(cluster)
        wait_redis(cluster, redis, time.monotonic() + 60)
        yield cluster, redis, feast_pod(cluster)
    finally:
        cluster.stop()


def _resp(port: int, *commands: bytes) -> list[bytes]:
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for command in commands:
            sock.sendall(command + b"\r\n")
            replies.append(sock.recv(4096))
    return replies


def test_live_redis_refuses_clients_without_the_password(redis_pods: Any) -> None:
    cluster, redis, _ = redis_pods
    port = redis.local_port("redis")
    password = cluster.secret("hybridops-redis", "password").encode()
    ping, keys, wrong = _resp(port, b"PING", b"KEYS *", b"AUTH default not-the-password")
    assert ping.startswith(b"-NOAUTH") and keys.startswith(b"-NOAUTH"), (ping, keys)
    assert wrong.startswith(b"-WRONGPASS"), wrong
    _, after = _resp(port, b"AUTH " + password, b"PING")
    assert after == b"+PONG\r\n"


def test_feast_and_the_service_reader_connect_with_the_rendered_connection_string(redis_pods: Any) -> None:
    """The feature server's own feature_store.yaml (Feast expands ${FEAST_REDIS_PASSWORD} from the env the
    chart gives it): Feast's Redis client and the inference service's reader both authenticate; the same
    string without its password part is refused."""
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.repo_config import load_repo_config
    from redis.exceptions import AuthenticationError, ResponseError

    from hybridops.serving.online_redis import redis_client

    _, _, feast = redis_pods
    folder = feast.mounts["/etc/feast"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEAST_REDIS_PASSWORD", feast.env["FEAST_REDIS_PASSWORD"])
        patch.setenv("FEAST_PG_PASSWORD", feast.env["FEAST_PG_PASSWORD"])
        config = load_repo_config(folder, folder / "feature_store.yaml")
    connection = config.online_store.connection_string
    assert "password=" in connection and "${" not in connection
    assert RedisOnlineStore()._get_client(config.online_store).ping() is True
    assert redis_client(config, 2.0).ping() is True
    bare = config.model_copy(deep=True)
    bare.online_store.connection_string = connection.split(",password=")[0]
    with pytest.raises((AuthenticationError, ResponseError), match=r"(?i)auth"):
        redis_client(bare, 2.0).ping()


# --- Prometheus: no admin or lifecycle API ------------------------------------------------------------------
def _prometheus_args(objs: tuple[dict[str, Any], ...]) -> list[str]:
    (container,) = find(objs, "Deployment", "hybridops-prometheus")["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


def test_prometheus_is_rendered_without_admin_or_lifecycle_api() -> None:
    for case, profile, files in CASES:
        objs = objects(profile, files)
        if not any(
            o["kind"] == "Deployment" and o["metadata"]["name"] == "hybridops-prometheus" for o in objs
        ):
            continue
        args = _prometheus_args(objs)
        assert not [a for a in args if a.startswith(("--web.enable-admin-api", "--web.enable-lifecycle"))], (
            case
        )
        assert not [a for a in args if a.startswith("--web.enable-remote-write-receiver")], case


def test_live_prometheus_with_the_rendered_flags_refuses_admin_and_lifecycle_calls(tmp_path: Path) -> None:
    args = _prometheus_args(objects("hybrid"))
    port = closed_port()
    local = {
        "--config.file": str(tmp_path / "prometheus.yml"),
        "--storage.tsdb.path": str(tmp_path / "data"),
        "--web.listen-address": f"127.0.0.1:{port}",
    }
    (tmp_path / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
    argv = [require_tool("prometheus")]
    for arg in args:
        flag = arg.split("=", 1)[0]
        argv.append(f"{flag}={local[flag]}" if flag in local else arg)
    assert set(local) <= {a.split("=", 1)[0] for a in args}  # only paths and the address were moved
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/-/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and process.poll() is None, (
                tmp_path / "prometheus.log"
            ).read_text()
            time.sleep(0.3)
        calls = [
            ("POST", "/api/v1/admin/tsdb/snapshot"),
            ("POST", "/api/v1/admin/tsdb/delete_series?match[]=up"),
            ("POST", "/api/v1/admin/tsdb/clean_tombstones"),
            ("POST", "/-/reload"),
            ("POST", "/-/quit"),
            ("PUT", "/-/quit"),
            ("POST", "/api/v1/write"),
        ]
        answers = {
            f"{method} {path}": requests.request(method, url + path, timeout=5) for method, path in calls
        }
        for call, answer in answers.items():
            text = answer.text
            if "/admin/" in call:  # Prometheus answers a disabled admin API with 500 "unavailable"
                assert "admin APIs disabled" in text, (call, answer.status_code, text[:200])
            elif "/-/" in call:
                assert answer.status_code == 403 and "Lifecycle API is not enabled" in text, (
                    call,
                    text[:200],
                )
            else:  # no remote-write receiver
                assert answer.status_code == 404, (call, answer.status_code, text[:200])
        assert process.poll() is None and requests.get(url + "/-/healthy", timeout=5).status_code == 200
        assert not (tmp_path / "data" / "snapshots").exists()
        print("[credentials] prometheus:", {call: a.status_code for call, a in answers.items()})
    finally:
        stop_process(process)


# --- the read-write Dagster UI ----------------------------------------------------------------------------------
WEBSERVER = ("hybridops-dagster-webserver", 80)


def test_the_chart_has_no_ingress_and_only_clusterip_services() -> None:
    """No Ingress but the sign-in proxies' own (uiProxy.ingress, opt-in: ci/ui-proxy-values.yaml), whose every
    path leads to a proxy, never around it."""
    for case, profile, files in CASES:
        objs = objects(profile, files)
        assert not [o for o in objs if o["kind"] in ("Gateway", "HTTPRoute")], case
        for ingress in (o for o in objs if o["kind"] == "Ingress"):
            assert ingress["metadata"]["name"] == "hybridops-ui-proxy", case
            backends = {
                p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]
            }
            assert backends and all(b.startswith("hybridops-ui-proxy-") for b in backends), (case, backends)
        for obj in objs:
            if obj["kind"] == "Service":
                assert obj["spec"].get("type", "ClusterIP") == "ClusterIP", (case, obj["metadata"]["name"])


def test_the_read_write_dagster_ui_is_closed_to_everything_outside_the_release() -> None:
    objs = objects("hybrid")
    assert not [o for o in objs if o["metadata"]["name"] == "hybridops-allow-dagster-webserver"]
    outside = [
        Connection("browser", *WEBSERVER, client_namespace="default"),
        Connection("ingress-nginx", *WEBSERVER, client_namespace="ingress-nginx"),
        Connection("inference", *WEBSERVER),  # a pod of the release that has no business there
        Connection("feast", *WEBSERVER),
    ]
    assert len(unreachable(objs, outside)) == len(outside)
    # MLflow, the inference service and Grafana stay open to the networkPolicy.ingressFrom peers (any).
    for host, port in (("hybridops-mlflow", 5000), ("hybridops-inference", 80), ("hybridops-grafana", 80)):
        assert unreachable(objs, [Connection("browser", host, port, client_namespace="default")]) == [], host


def test_the_dagster_ui_opens_only_to_the_peers_named_for_it() -> None:
    proxy = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "auth"}}}
    overrides = {
        "networkPolicy": {"dagsterWebserverFrom": [proxy]},
        "dagster": {"webserver": {"readOnly": {"enabled": True}}},
    }
    objs = list(chart.manifests(chart.render("hybrid", [], overrides=overrides)))
    assert unreachable(objs, [Connection("oauth2-proxy", *WEBSERVER, client_namespace="auth")]) == []
    denied = unreachable(objs, [Connection("browser", *WEBSERVER, client_namespace="default")])
    assert len(denied) == 1 and "ingress" in denied[0].reason
    # The read-only webserver follows ingressFrom (default any source), as MLflow and Grafana.
    assert (
        unreachable(
            objs,
            [Connection("browser", "hybridops-dagster-webserver-readonly", 80, client_namespace="default")],
        )
        == []
    )
