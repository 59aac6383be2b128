"""Scenario 17 (issue 14): with ``feast.auth.mode: oidc`` and ``feast.auth.discoveryUrl`` naming an identity
provider, the Feast feature server requires its tokens: Feast's own ``auth: oidc`` in the rendered
feature_store.yaml. (The default, Kubernetes auth, is tested in test_deploy_feast_k8s_auth.py.)

Live: the chart's PostgreSQL (SQL registry), Redis and the feature server with the rendered command
(``python -m hybridops.features.server``, which keeps Feast's own oidc auth), env and Secret (started by
the rehearsal's kubelet), and a stand-in OIDC provider on loopback (a discovery document
and a JWKS with one RSA key; tokens signed here). Without a token, with a token signed by another key, or
an expired one, every data endpoint (read, push, write, materialize) answers 401 and writes nothing;
a token the provider signed gets past authentication; ``/health`` (the kubelet's probe) stays open.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from deploy_support import find
from tools import missing, require_tool

from hybridops.deploy import chart
from hybridops.rehearsal.postgres import MissingProgram, chart_postgresql
from hybridops.rehearsal.topology import Cluster
from hybridops.rehearsal.workloads import start_feast, start_redis, wait_redis

KID = "hybridops-test"


def _provider(key: rsa.RSAPrivateKey) -> tuple[ThreadingHTTPServer, str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KID, use="sig", alg="RS256")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            documents = {
                "/.well-known/openid-configuration": {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/auth",
                    "token_endpoint": f"{base}/token",
                    "jwks_uri": f"{base}/jwks",
                },
                "/jwks": {"keys": [jwk]},
            }
            body = json.dumps(documents.get(self.path, {})).encode()
            self.send_response(200 if self.path in documents else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _token(key: rsa.RSAPrivateKey, issuer: str, expires_in: float = 300, kid: str = KID) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "trainer",
        "preferred_username": "trainer",
        "aud": "feast",
        "iat": now,
        "exp": now + int(expires_in),
        "resource_access": {"feast": {"roles": ["writer"]}},
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def feast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    for tool in ("redis-server", "redis-cli", "psql", "pg_isready", "initdb", "postgres"):
        require_tool(tool)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider, issuer = _provider(key)
    overrides = {
        "feast": {
            "auth": {
                "mode": "oidc",
                "discoveryUrl": f"{issuer}/.well-known/openid-configuration",
                "clientId": "feast",
                "audience": "feast",
                "issuer": issuer,
            }
        }
    }
    objs = tuple(chart.manifests(chart.render("hybrid", [], overrides=overrides)))
    cluster = Cluster(objs, tmp_path_factory.mktemp("feast-auth"))
    deadline = time.monotonic() + 300
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(provider.shutdown)
        try:
            cleanup.enter_context(chart_postgresql(cluster))
        except MissingProgram as exc:
            missing(str(exc), "apt-get install postgresql (Debian package)")
        cleanup.callback(cluster.stop)
        redis = start_redis(cluster)
        wait_redis(cluster, redis, deadline)
        pod = start_feast(cluster)
        cluster.wait_started(pod, deadline)
        yield {"url": pod.url("http"), "key": key, "issuer": issuer, "objs": objs, "cluster": cluster}


ENDPOINTS = [
    ("POST", "/get-online-features", {"features": ["origin_weather:temp"], "entities": {"origin": ["EWR"]}}),
    ("POST", "/push", {"push_source_name": "x", "df": {"a": [1]}, "to": "online"}),
    ("POST", "/write-to-online-store", {"feature_view_name": "origin_weather", "df": {"origin": ["EWR"]}}),
    ("POST", "/materialize", {"start_ts": "2013-01-01T00:00:00", "end_ts": "2013-01-02T00:00:00"}),
    ("POST", "/materialize-incremental", {"end_ts": "2013-01-02T00:00:00"}),
]


def test_the_rendered_feature_store_yaml_asks_for_oidc(feast: dict[str, Any]) -> None:
    config = yaml.safe_load(
        find(feast["objs"], "Secret", "hybridops-feast")["stringData"]["feature_store.yaml"]
    )
    assert config["auth"] == {
        "type": "oidc",
        "auth_discovery_url": f"{feast['issuer']}/.well-known/openid-configuration",
        "client_id": "feast",
        "audience": "feast",
        "issuer": feast["issuer"],
    }
    default = yaml.safe_load(
        find(tuple(chart.manifests(chart.render("hybrid", []))), "Secret", "hybridops-feast")["stringData"][
            "feature_store.yaml"
        ]
    )
    assert default["auth"] == {"type": "kubernetes"}  # the default (test_deploy_feast_k8s_auth.py)


def test_every_data_endpoint_refuses_requests_without_a_valid_token(feast: dict[str, Any]) -> None:
    url, key, issuer = feast["url"], feast["key"], feast["issuer"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad_tokens = {
        "none": None,
        "garbage": "not-a-jwt",
        "another key": _token(other, issuer),
        "expired": _token(key, issuer, expires_in=-3600),
        "wrong issuer": jwt.encode(
            {"iss": "http://evil.example", "sub": "x", "aud": "feast", "exp": int(time.time()) + 300},
            key,
            algorithm="RS256",
            headers={"kid": KID},
        ),
    }
    statuses: dict[str, int] = {}
    for method, path, body in ENDPOINTS:
        for name, token in bad_tokens.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = requests.request(method, url + path, json=body, headers=headers, timeout=60)
            statuses[f"{path} {name}"] = answer.status_code
            assert answer.status_code in (401, 403), (path, name, answer.status_code, answer.text[:200])
    redis = feast["cluster"].pods["redis"]
    password = feast["cluster"].secret("hybridops-redis", "password")
    import redis as redis_py

    assert redis_py.Redis(port=redis.local_port("redis"), password=password).dbsize() == 0  # nothing written
    assert requests.get(url + "/health", timeout=30).status_code == 200  # the probes need no token
    print("[feast-auth]", sorted(set(statuses.values())), f"{len(statuses)} refused requests")


def test_a_token_the_provider_signed_gets_past_authentication(feast: dict[str, Any]) -> None:
    url, key, issuer = feast["url"], feast["key"], feast["issuer"]
    headers = {"Authorization": f"Bearer {_token(key, issuer)}"}
    method, path, body = ENDPOINTS[0]
    answer = requests.request(method, url + path, json=body, headers=headers, timeout=60)
    # Authenticated: what follows is Feast's answer about the request itself (no such feature view in this
    # empty registry), never 401/403.
    assert answer.status_code not in (401, 403), (answer.status_code, answer.text[:300])
