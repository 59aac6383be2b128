"""The feature server's Kubernetes token parser (hybridops.features.kubernetes_auth.ReviewedTokenParser)
against ``k8s_double`` holding the rendered chart's Roles and bindings: a caller is who a successful
TokenReview says, with the Roles the RoleBindings of the release namespace bind to it; every other answer,
and every failure to get one, is an AuthenticationError (Feast's REST layer answers 401).

The parser calls the double with the feature server's own ServiceAccount token, so the double's RBAC
(the rendered Role and the auth-delegator binding) decides what it may ask, as the API server would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from feast_auth_support import FEAST, OVERRIDES, READER_ROLE, READER_SA, STRANGER_SA, WRITER_ROLE, WRITER_SA
from k8s_auth import ISSUER
from k8s_double import K8sDouble, running
from kubernetes import client
from starlette.authentication import AuthenticationError

from hybridops.deploy import chart
from hybridops.errors import HybridopsError
from hybridops.features.kubernetes_auth import ReviewedIdentity, ReviewedTokenParser
from hybridops.rehearsal.kubelet import NAMESPACE, closed_port


def _binding(name: str, role: str, subject: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [subject],
    }


@pytest.fixture(scope="module")
def api() -> Iterator[K8sDouble]:
    objs = tuple(chart.manifests(chart.render("hybrid", [], overrides=OVERRIDES)))
    with running() as double:
        double.load(objs, NAMESPACE)
        # Bindings an operator may add: every ServiceAccount of namespace team-b reads (a Group), and a
        # person the API server knows by another authenticator writes (a User).
        double.load(
            (
                _binding(
                    "team-b-reads", READER_ROLE, {"kind": "Group", "name": "system:serviceaccounts:team-b"}
                ),
                _binding("jane-writes", WRITER_ROLE, {"kind": "User", "name": "jane@example.org"}),
            ),
            NAMESPACE,
        )
        yield double


def _parser(api: K8sDouble, own_token: str, url: str | None = None) -> ReviewedTokenParser:
    configuration = client.Configuration()
    configuration.host = url or api.url
    configuration.api_key = {"BearerToken": f"Bearer {own_token}"}  # as load_incluster_config sets it
    return ReviewedTokenParser(client.ApiClient(configuration), NAMESPACE, timeout=10)


@pytest.fixture(scope="module")
def parser(api: K8sDouble) -> ReviewedTokenParser:
    """The parser as the feature server's pod has it: its own ServiceAccount's token."""
    return _parser(api, api.service_account_token(NAMESPACE, FEAST))


def _reviewed(api: K8sDouble) -> list[str]:
    return [body["spec"]["token"] for method, _, body in api.requests if method == "TOKENREVIEW" and body]


def _forged(namespace: str, name: str) -> str:
    """What anyone can make: a ServiceAccount token's claims, signed by a key the API server never saw."""
    claims = {
        "iss": ISSUER,
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "aud": [ISSUER],
        "kubernetes.io": {"namespace": namespace},
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(
        claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"
    )


def test_a_real_service_account_token_gets_the_roles_its_bindings_give(
    api: K8sDouble, parser: ReviewedTokenParser
) -> None:
    writer = asyncio.run(parser.user_details_from_access_token(api.service_account_token(*WRITER_SA)))
    assert writer.username == f"system:serviceaccount:{WRITER_SA[0]}:{WRITER_SA[1]}"
    assert writer.roles == [WRITER_ROLE]
    assert writer.namespaces == [NAMESPACE]
    assert f"system:serviceaccounts:{NAMESPACE}" in writer.groups
    reader = parser.user_details(api.service_account_token(*READER_SA))  # bound from another namespace
    assert (reader.roles, reader.namespaces) == ([READER_ROLE], [READER_SA[0]])


def test_a_real_token_of_an_unbound_service_account_is_authenticated_with_no_role(
    api: K8sDouble, parser: ReviewedTokenParser
) -> None:
    nobody = parser.user_details(api.service_account_token(*STRANGER_SA))
    assert nobody.username == f"system:serviceaccount:{STRANGER_SA[0]}:{STRANGER_SA[1]}"
    assert nobody.roles == []  # Feast's Permissions then answer 403
    # Same name, other namespace: the writer binding names the account in the release namespace only.
    elsewhere = parser.user_details(api.service_account_token("team-a", WRITER_SA[1]))
    assert elsewhere.roles == []


def test_group_and_user_subjects_bind_as_in_kubernetes_rbac(
    api: K8sDouble, parser: ReviewedTokenParser
) -> None:
    team_b = parser.user_details(api.service_account_token("team-b", "scorer"))
    assert team_b.roles == [READER_ROLE]
    api.identities["opaque-token-of-jane"] = "jane@example.org"  # a person's token, not a JWT
    jane = parser.user_details("opaque-token-of-jane")
    assert (jane.username, jane.roles, jane.namespaces) == ("jane@example.org", [WRITER_ROLE], [])


def test_a_forged_token_naming_the_writer_is_refused(api: K8sDouble, parser: ReviewedTokenParser) -> None:
    """Feast 0.67's KubernetesTokenParser would grant this token the writer's roles."""
    forged = _forged(*WRITER_SA)
    with pytest.raises(AuthenticationError, match="not authenticated"):
        asyncio.run(parser.user_details_from_access_token(forged))
    assert forged in _reviewed(api)  # refused because the API server said so


def test_an_expired_token_of_a_bound_service_account_is_refused(
    api: K8sDouble, parser: ReviewedTokenParser
) -> None:
    live = api.service_account_token(*WRITER_SA, expires_in=600)
    assert parser.user_details(live).roles == [WRITER_ROLE]
    expired = api.service_account_token(*WRITER_SA, expires_in=-60)
    with pytest.raises(AuthenticationError, match="not authenticated"):
        parser.user_details(expired)
    assert expired in _reviewed(api)


@pytest.mark.parametrize(
    "status",
    [
        # A user but not authenticated (a real API server names no user then): the verdict decides.
        {"authenticated": False, "user": {"username": "system:serviceaccount:hybridops:backfill"}},
        {"user": {"username": "system:serviceaccount:hybridops:backfill"}},  # no verdict at all
        {"authenticated": True, "user": {}},  # authenticated as nobody
        {"authenticated": True},
    ],
)
def test_only_an_authenticated_review_naming_a_user_lets_a_caller_in(
    api: K8sDouble, parser: ReviewedTokenParser, status: dict[str, Any]
) -> None:
    token = _forged(*WRITER_SA)
    api.canned_reviews[token] = status
    with pytest.raises(AuthenticationError, match="not authenticated"):
        parser.user_details(token)


@pytest.mark.parametrize("token", ["not-a-jwt", "", "Bearer x.y.z"])
def test_tokens_the_api_server_does_not_know_are_refused(parser: ReviewedTokenParser, token: str) -> None:
    with pytest.raises(AuthenticationError):
        parser.user_details(token)


def test_when_the_server_may_not_review_tokens_even_a_real_writer_token_is_refused(api: K8sDouble) -> None:
    """The server's own token without system:auth-delegator: the API server answers the TokenReview 403."""
    unprivileged = _parser(api, api.service_account_token(NAMESPACE, "no-delegation"))
    writer = api.service_account_token(*WRITER_SA)
    with pytest.raises(AuthenticationError, match="could not be reviewed"):
        asyncio.run(unprivileged.user_details_from_access_token(writer))
    assert any(method == "FORBIDDEN" and path.endswith("/tokenreviews") for method, path, _ in api.requests)


def test_when_the_api_server_cannot_be_reached_every_token_is_refused(api: K8sDouble) -> None:
    unreachable = _parser(api, "any", url=f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="could not be reviewed"):
        unreachable.user_details(api.service_account_token(*WRITER_SA))
    assert time.monotonic() - started < 30  # the client's own retries, then a refusal, not a hang


def test_when_the_bindings_cannot_be_read_no_role_is_guessed(api: K8sDouble) -> None:
    """A token that may review tokens but not list RoleBindings (the chart's Role missing): 401."""
    api.load(
        (
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "reviewer-only"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:auth-delegator",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reviewer-only", "namespace": NAMESPACE}],
            },
        ),
        NAMESPACE,
    )
    reviewer = _parser(api, api.service_account_token(NAMESPACE, "reviewer-only"))
    with pytest.raises(AuthenticationError, match="roles could not be read"):
        reviewer.user_details(api.service_account_token(*WRITER_SA))


@pytest.mark.parametrize(
    ("username", "account"),
    [
        ("system:serviceaccount:team-a:recommender", ("team-a", "recommender")),
        ("system:serviceaccount:team-a", None),
        ("system:serviceaccount::recommender", None),
        ("system:serviceaccount:team-a:recommender:extra", None),
        ("jane@example.org", None),
    ],
)
def test_only_a_well_formed_service_account_username_names_an_account(
    username: str, account: tuple[str, str] | None
) -> None:
    assert ReviewedIdentity(username, ()).service_account == account


def test_outside_a_pod_the_parser_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(HybridopsError, match="no in-cluster Kubernetes configuration"):
        ReviewedTokenParser.in_cluster(namespace_file=tmp_path / "namespace")
