"""Scenario 17 (issue 14): by default the Feast feature server authenticates every caller with Kubernetes
auth (Feast's ``auth: kubernetes``, its parser replaced by one that believes only a TokenReview's answer:
hybridops.features.kubernetes_auth) and enforces the Permissions hybridops applies (read: the reader role;
push, write, materialize: the writer role).

Rendered: the default chart asks for ``auth: {type: kubernetes}``; the server's pod runs as its own
ServiceAccount with the token mounted; its Role allows listing RoleBindings and nothing else; a
ClusterRoleBinding gives it ``system:auth-delegator`` (TokenReviews); the reader and writer Roles exist and
``feast.auth.readers`` / ``writers`` bind other ServiceAccounts to them; the server may reach the API server
through the NetworkPolicies; ``mode: none`` renders none of it.

Live: the chart's PostgreSQL (SQL registry, the definitions and Permissions applied by a run pod with the
rendered environment), Redis and the feature server with the rendered command (Feast's server, started by
``python -m hybridops.features.server`` with the reviewed Kubernetes auth), env and Secret, its Kubernetes
API played by ``k8s_double`` over TLS, holding the rendered Roles and bindings (its RBAC decides what the
server's own token may do). The server's in-cluster configuration (fixed paths under
/var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT) is pointed at temporary files
by a prelude run in the server's process, here only: that is the kubelet's job in a cluster.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis as redis_py
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from deploy_support import find
from feast_auth_support import FEAST, OVERRIDES, READER_ROLE, READER_SA, STRANGER_SA, WRITER_ROLE, WRITER_SA
from k8s_auth import ISSUER
from k8s_double import K8sDouble, running
from tools import missing, require_tool

from hybridops.deploy import chart
from hybridops.features.store import load_definitions_module
from hybridops.rehearsal.kubelet import NAMESPACE
from hybridops.rehearsal.postgres import MissingProgram, chart_postgresql
from hybridops.rehearsal.topology import Cluster
from hybridops.rehearsal.workloads import start_feast, start_redis, wait_redis

ENTITY = {"origin_utc_hour": "EWR-2013-01-01T10"}
# One origin_weather row: every feature of the view (Feast refuses a frame without them), temp 39.02.
ROW = {
    "origin_utc_hour": ["EWR-2013-01-01T10"],
    "event_timestamp": ["2013-01-01T09:00:00"],
    **{name: [1.5] for name in load_definitions_module().VIEW_FEATURES["origin_weather"]},
    "temp": [39.02],
}

# The server reads the in-cluster configuration from fixed paths: in the server's process only, they name
# the files this test wrote (the kubelet mounts them in a cluster). Nothing else of the server changes.
_PRELUDE = """
import os
from pathlib import Path
import kubernetes.config.incluster_config as incluster
import hybridops.features.kubernetes_auth as reviewed
incluster.SERVICE_TOKEN_FILENAME = {token!r}
incluster.SERVICE_CERT_FILENAME = {ca!r}
reviewed.NAMESPACE_FILE = Path({namespace!r})
os.environ["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
os.environ["KUBERNETES_SERVICE_PORT"] = {port!r}
"""

# A run pod's job: the definitions and Permissions into the SQL registry, with the settings the rendered
# environment gives it (the role names among them). The platform has no push source (Dagster writes the
# online store itself); another team's is added here so that /push reaches Feast's permission check (Feast
# answers 422 for an unknown push source before it checks anything).
_APPLY = """
import json
from feast import FeatureView, PushSource
from hybridops.features.store import apply_definitions, feature_store
from hybridops.settings import load_settings
settings = load_settings()
store = feature_store(settings)
apply_definitions(store, settings)
weather = store.get_feature_view("origin_weather")
push = PushSource(name="origin_weather_push", batch_source=weather.batch_source)
pushed = FeatureView(
    name="origin_weather_pushed", entities=[store.get_entity("origin_utc_hour")], ttl=weather.ttl,
    schema=weather.schema, source=push, online=True,
)
store.apply([push, pushed])
print("PERMISSIONS " + json.dumps({p.name: sorted(p.policy.roles) for p in store.list_permissions()}))
"""


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (the API server's address here) and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "apiserver.crt", folder / "apiserver.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _pod_spec(objs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    spec: dict[str, Any] = find(objs, "Deployment", FEAST)["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def objs() -> tuple[dict[str, Any], ...]:
    return tuple(chart.manifests(chart.render("hybrid", [], overrides=OVERRIDES)))


# --- rendered ---------------------------------------------------------------------------------------------


def test_the_default_feature_store_yaml_asks_for_kubernetes_auth() -> None:
    default = tuple(chart.manifests(chart.render("hybrid", [])))
    config = yaml.safe_load(find(default, "Secret", FEAST)["stringData"]["feature_store.yaml"])
    assert config["auth"] == {"type": "kubernetes"}


def test_the_feature_server_runs_as_its_own_service_account_with_its_token(
    objs: tuple[dict[str, Any], ...],
) -> None:
    spec = _pod_spec(objs)
    assert spec["serviceAccountName"] == FEAST
    assert spec["automountServiceAccountToken"] is True  # Feast reads the token at the in-cluster path
    account = find(objs, "ServiceAccount", FEAST)
    assert account["automountServiceAccountToken"] is False  # only the pod spec mounts it
    assert account["metadata"]["labels"]["app.kubernetes.io/component"] == "feast"
    assert account["metadata"]["namespace"] == NAMESPACE
    # Feast's own parser trusts, unverified, any token whose subject names INTRA_COMMUNICATION_BASE64's value
    # (its own services' calls; feast-dev/feast#6785), and its security manager lets a user of that name past
    # every Permission. The reviewed parser has no such path; the server still never gets that variable.
    (container,) = spec["containers"]
    assert "INTRA_COMMUNICATION_BASE64" not in {e["name"] for e in container.get("env", [])}
    assert not container.get("envFrom")


def test_the_server_runs_feasts_server_with_the_reviewed_kubernetes_auth(
    objs: tuple[dict[str, Any], ...],
) -> None:
    """Not `feast serve`: its Kubernetes parser trusts unverified tokens (see the forged-token test)."""
    (container,) = _pod_spec(objs)["containers"]
    command = container["command"]
    assert command[:3] == ["python", "-m", "hybridops.features.server"]
    assert command[command.index("--feature-store-yaml") + 1] == "/etc/feast/feature_store.yaml"
    assert {"--metrics", "--no-access-log"} <= set(command)


def test_the_server_may_list_role_bindings_and_review_tokens_and_nothing_else(
    objs: tuple[dict[str, Any], ...],
) -> None:
    role = find(objs, "Role", FEAST)
    assert role["rules"] == [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["list"]}
    ]
    binding = find(objs, "RoleBinding", FEAST)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FEAST}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FEAST, "namespace": NAMESPACE}]
    (delegator,) = [o for o in objs if o["kind"] == "ClusterRoleBinding"]
    assert delegator["metadata"]["name"] == f"{NAMESPACE}-{FEAST}-token-review"
    assert "namespace" not in delegator["metadata"]  # cluster-scoped
    assert delegator["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:auth-delegator",
    }
    assert delegator["subjects"] == [{"kind": "ServiceAccount", "name": FEAST, "namespace": NAMESPACE}]
    assert not [o for o in objs if o["kind"] == "ClusterRole"]  # no cluster-wide rights of the chart's own


def test_reader_and_writer_roles_exist_and_the_values_bind_service_accounts_to_them(
    objs: tuple[dict[str, Any], ...],
) -> None:
    for name in (READER_ROLE, WRITER_ROLE):
        assert find(objs, "Role", name)["rules"] == []  # a name for Feast, no Kubernetes rights
    reader = find(objs, "RoleBinding", READER_ROLE)
    assert reader["roleRef"]["name"] == READER_ROLE
    assert reader["subjects"] == [{"kind": "ServiceAccount", "name": READER_SA[1], "namespace": READER_SA[0]}]
    writer = find(objs, "RoleBinding", WRITER_ROLE)
    assert writer["roleRef"]["name"] == WRITER_ROLE
    assert writer["subjects"] == [{"kind": "ServiceAccount", "name": WRITER_SA[1], "namespace": NAMESPACE}]
    default = tuple(chart.manifests(chart.render("hybrid", [])))
    assert not [
        o
        for o in default
        if o["kind"] == "RoleBinding" and o["metadata"]["name"] in (READER_ROLE, WRITER_ROLE)
    ]
    # The platform applies the Permissions with these names (hybridops.settings FeastSettings).
    (user_code,) = find(objs, "Deployment", "hybridops-dagster-user-code")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e.get("value") for e in user_code["env"]}
    assert env["HYBRIDOPS_FEAST__READER_ROLE"] == READER_ROLE
    assert env["HYBRIDOPS_FEAST__WRITER_ROLE"] == WRITER_ROLE


def test_the_server_may_reach_the_api_server(objs: tuple[dict[str, Any], ...]) -> None:
    policy = find(objs, "NetworkPolicy", "hybridops-allow-kube-api")
    (selector,) = policy["spec"]["podSelector"]["matchExpressions"]
    assert "feast" in selector["values"]
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports & {443, 6443}


def test_the_bound_service_accounts_namespaces_may_reach_the_feature_server(
    objs: tuple[dict[str, Any], ...],
) -> None:
    """NetworkPolicies select pods, not ServiceAccounts: the namespaces of the bound accounts may connect to the
    API port (not metrics), and the server's auth decides the rest. Nothing extra without bindings."""
    policy = find(objs, "NetworkPolicy", "hybridops-allow-feast-clients")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": READER_SA[0]}}},
        {"podSelector": {}},  # WRITER_SA is in the release namespace
    ]
    assert policy["spec"]["podSelector"]["matchExpressions"][0]["values"] == ["feast"]
    default = tuple(chart.manifests(chart.render("hybrid", [])))
    assert not [o for o in default if o["metadata"]["name"] == "hybridops-allow-feast-clients"]


def test_mode_none_is_an_explicit_opt_out_and_renders_no_rbac() -> None:
    rendered = tuple(
        chart.manifests(chart.render("hybrid", [], overrides={"feast": {"auth": {"mode": "none"}}}))
    )
    config = yaml.safe_load(find(rendered, "Secret", FEAST)["stringData"]["feature_store.yaml"])
    assert config["auth"] == {"type": "no_auth"}
    assert _pod_spec(rendered)["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in _pod_spec(rendered)
    assert not [o for o in rendered if "feast" in o["metadata"]["name"] and "Role" in o["kind"]]
    policy = find(rendered, "NetworkPolicy", "hybridops-allow-kube-api")
    assert "feast" not in policy["spec"]["podSelector"]["matchExpressions"][0]["values"]


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"mode": "oidc"}, "needs feast.auth.discoveryUrl"),
        (
            {"discoveryUrl": "https://idp.example/.well-known/openid-configuration"},
            "set feast.auth.mode=oidc",
        ),
    ],
)
def test_inconsistent_auth_values_are_refused(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message):
        chart.render("hybrid", [], overrides={"feast": {"auth": auth}})


# --- live -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feast(
    objs: tuple[dict[str, Any], ...], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    for tool in ("redis-server", "redis-cli", "psql", "pg_isready", "initdb", "postgres"):
        require_tool(tool)
    root = tmp_path_factory.mktemp("feast-k8s-auth")
    cert, key = _self_signed(root)
    cluster = Cluster(objs, root)
    deadline = time.monotonic() + 300
    with contextlib.ExitStack() as cleanup:
        api: K8sDouble = cleanup.enter_context(running(tls=(cert, key)))
        api.load(objs, NAMESPACE)  # what `hybridops deploy` applied
        try:
            cleanup.enter_context(chart_postgresql(cluster))
        except MissingProgram as exc:
            missing(str(exc), "apt-get install postgresql (Debian package)")
        cleanup.callback(cluster.stop)
        redis = start_redis(cluster)
        wait_redis(cluster, redis, deadline)

        # A run pod applies the definitions and Permissions (Feast serve exits while the registry is empty).
        launcher = yaml.safe_load(
            find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"]
        )
        config = launcher["run_launcher"]["config"]["run_k8s_config"]
        (user_code,) = find(objs, "Deployment", "hybridops-dagster-user-code")["spec"]["template"]["spec"][
            "containers"
        ]
        run_pod = cluster.pod(
            "dagster-run", config["pod_spec_config"], config["container_config"], user_code["image"]
        )
        output = cluster.finish(run_pod, cluster.start(run_pod, [sys.executable, "-c", _APPLY]), deadline)
        (line,) = [line for line in output.splitlines() if line.startswith("PERMISSIONS ")]
        permissions = json.loads(line.removeprefix("PERMISSIONS "))

        # The kubelet's part: the pod's ServiceAccount token, the API server's CA and the namespace, mounted
        # because (and only because) the rendered pod spec asks for them.
        spec = _pod_spec(objs)
        assert spec["automountServiceAccountToken"] is True
        mounted = root / "serviceaccount"
        mounted.mkdir()
        (mounted / "token").write_text(api.service_account_token(NAMESPACE, spec["serviceAccountName"]))
        (mounted / "ca.crt").write_bytes(cert.read_bytes())
        (mounted / "namespace").write_text(NAMESPACE)
        prelude = _PRELUDE.format(
            token=str(mounted / "token"),
            ca=str(mounted / "ca.crt"),
            namespace=str(mounted / "namespace"),
            port=str(api.port),
        )
        pod = start_feast(cluster, prelude=prelude)
        cluster.wait_started(pod, deadline)
        yield {
            "url": pod.url("http"),
            "api": api,
            "cluster": cluster,
            "permissions": permissions,
            "redis": redis_py.Redis(
                port=redis.local_port("redis"), password=cluster.secret("hybridops-redis", "password")
            ),
        }


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _requests() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (
            "read",
            "/get-online-features",
            {"features": ["origin_weather:temp"], "entities": {k: [v] for k, v in ENTITY.items()}},
        ),
        ("write", "/write-to-online-store", {"feature_view_name": "origin_weather", "df": ROW}),
        ("write", "/push", {"push_source_name": "origin_weather_push", "df": ROW, "to": "online"}),
        ("write", "/materialize", {"start_ts": "2013-01-01T00:00:00", "end_ts": "2013-01-02T00:00:00"}),
        ("write", "/materialize-incremental", {"end_ts": "2013-01-02T00:00:00"}),
    ]


def _call(url: str, path: str, body: dict[str, Any], token: str | None) -> requests.Response:
    return requests.post(url + path, json=body, headers=_bearer(token), timeout=60)


def test_the_run_pod_applied_the_permissions_with_the_chart_role_names(feast: dict[str, Any]) -> None:
    assert feast["permissions"] == {
        "online-read": sorted([READER_ROLE, WRITER_ROLE]),
        "online-write": [WRITER_ROLE],
    }


def test_without_a_token_every_data_endpoint_answers_401_and_nothing_is_written(
    feast: dict[str, Any],
) -> None:
    for _, path, body in _requests():
        answer = _call(feast["url"], path, body, None)
        assert answer.status_code == 401, (path, answer.status_code, answer.text[:300])
    assert feast["redis"].dbsize() == 0
    assert requests.get(feast["url"] + "/health", timeout=30).status_code == 200  # the probes need no token


def test_a_token_the_api_server_did_not_issue_is_refused(feast: dict[str, Any]) -> None:
    """Not a JWT, or a JWT signed by someone else for a ServiceAccount nobody bound: TokenReview says
    unauthenticated; the server refuses."""
    stranger = jwt.encode(
        {"iss": ISSUER, "sub": f"system:serviceaccount:{STRANGER_SA[0]}:{STRANGER_SA[1]}"},
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
    )
    for token in ("not-a-jwt", stranger):
        for _, path, body in _requests():
            answer = _call(feast["url"], path, body, token)
            assert answer.status_code == 401, (path, answer.status_code, answer.text[:300])
    assert feast["redis"].dbsize() == 0
    reviewed = [body["spec"]["token"] for method, _, body in feast["api"].requests if method == "TOKENREVIEW"]
    assert stranger in reviewed  # the server asked the API server, it did not trust the token itself


def test_a_forged_token_naming_the_writer_service_account_is_refused(feast: dict[str, Any]) -> None:
    """Feast 0.67's own KubernetesTokenParser, after a failed TokenReview, takes the ServiceAccount from the
    token's unverified ``sub`` claim: this self-made JWT would get the writer's roles. The chart's entry point
    (hybridops.features.server) believes only the review: 401 on every endpoint, nothing written."""
    forged = jwt.encode(
        {
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{WRITER_SA[0]}:{WRITER_SA[1]}",
            "aud": [ISSUER],
            "kubernetes.io": {"namespace": WRITER_SA[0]},
        },
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
    )
    for _, path, body in _requests():
        answer = _call(feast["url"], path, body, forged)
        assert answer.status_code == 401, (path, answer.status_code, answer.text[:300])
    assert feast["redis"].dbsize() == 0
    reviewed = [body["spec"]["token"] for method, _, body in feast["api"].requests if method == "TOKENREVIEW"]
    assert forged in reviewed


def test_a_reader_reads_online_features_and_may_not_write(feast: dict[str, Any]) -> None:
    token = feast["api"].service_account_token(*READER_SA)
    for kind, path, body in _requests():
        answer = _call(feast["url"], path, body, token)
        if kind == "read":
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        else:
            assert answer.status_code == 403, (path, answer.status_code, answer.text[:300])
    assert feast["redis"].dbsize() == 0  # nothing written by the refused requests


def test_a_service_account_without_a_binding_may_do_nothing(feast: dict[str, Any]) -> None:
    token = feast["api"].service_account_token(*STRANGER_SA)  # a real token, no reader/writer binding
    for _, path, body in _requests():
        answer = _call(feast["url"], path, body, token)
        assert answer.status_code == 403, (path, answer.status_code, answer.text[:300])
    assert feast["redis"].dbsize() == 0


def test_a_writer_writes_and_a_reader_then_reads_the_value(feast: dict[str, Any]) -> None:
    writer = feast["api"].service_account_token(*WRITER_SA)
    _, path, body = _requests()[1]
    answer = _call(feast["url"], path, body, writer)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    assert feast["redis"].dbsize() > 0
    reader = feast["api"].service_account_token(*READER_SA)
    _, path, body = _requests()[0]
    answer = _call(feast["url"], path, body, reader)
    assert answer.status_code == 200, answer.text[:300]
    got = dict(zip(answer.json()["metadata"]["feature_names"], answer.json()["results"], strict=True))
    assert got["temp"]["values"] == [39.02] and got["temp"]["statuses"] == ["PRESENT"], got


def test_the_servers_own_token_was_limited_by_the_rendered_rbac(feast: dict[str, Any]) -> None:
    """Every call the server made with its token was allowed by the rendered Role and the auth-delegator
    binding: TokenReviews and the RoleBindings of its namespace are all it asks for (Feast's own parser also
    tried cluster-wide lookups the chart does not allow)."""
    calls = feast["api"].requests
    assert any(method == "TOKENREVIEW" for method, _, _ in calls)
    refused = {path for method, path, _ in calls if method == "FORBIDDEN"}
    assert not refused, refused
