"""Kubernetes authentication for Feast's feature server that believes only the API server.

Feast 0.67's ``KubernetesTokenParser`` asks the API server to review a caller's token, but whatever the
answer, it then decodes the token WITHOUT verifying its signature and grants the Roles bound to the
ServiceAccount its ``sub`` claim names: a self-made JWT naming a bound ServiceAccount gets that account's
roles. :class:`ReviewedTokenParser` is the parser :mod:`hybridops.features.server` installs instead: the
identity is the reviewed ``status.user`` of a TokenReview that answered ``authenticated: true``, and nothing
else of the token is read. A review that fails (the API server unreachable, slow, refusing the server's own
token) or answers unauthenticated raises :class:`AuthenticationError`, which Feast's REST layer turns into a
401; nothing is cached, so a deleted ServiceAccount or RoleBinding counts from the next request.

Roles follow Kubernetes RBAC's own matching over the RoleBindings of the server's namespace (the only ones
the chart's Role lets the server list): a ``ServiceAccount`` subject names the reviewed account (its name and
namespace), a ``User`` subject the reviewed username, a ``Group`` subject one of the reviewed groups. The
Role each matching binding refers to is a role of the caller, the name Feast's Permissions list.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feast.permissions.auth.token_parser import TokenParser
from feast.permissions.user import User
from kubernetes import client, config
from starlette.authentication import AuthenticationError

from hybridops.errors import HybridopsError

logger = logging.getLogger(__name__)

# Where the kubelet mounts the pod's namespace beside its ServiceAccount token (automountServiceAccountToken).
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Seconds each call to the API server may take (the Kubernetes client's timeout, for connect and for read).
API_TIMEOUT = 10.0
_SERVICE_ACCOUNT = "system:serviceaccount:"


@dataclass(frozen=True)
class ReviewedIdentity:
    """Who the API server says a token belongs to."""

    username: str
    groups: tuple[str, ...]

    @property
    def service_account(self) -> tuple[str, str] | None:
        """(namespace, name) when the username is a ServiceAccount's (``system:serviceaccount:<ns>:<name>``)."""
        if not self.username.startswith(_SERVICE_ACCOUNT):
            return None
        namespace, _, name = self.username.removeprefix(_SERVICE_ACCOUNT).partition(":")
        if not namespace or not name or ":" in name:
            return None
        return namespace, name


class ReviewedTokenParser(TokenParser):
    """A Feast ``TokenParser`` whose users are what a successful TokenReview says, with the roles the
    RoleBindings of ``namespace`` give them (see the module docstring).

    ``api``: a Kubernetes client whose credentials may create TokenReviews and list RoleBindings in
    ``namespace`` (in a pod: :meth:`in_cluster`)."""

    def __init__(self, api: client.ApiClient, namespace: str, timeout: float = API_TIMEOUT) -> None:
        self.namespace = namespace
        self.timeout = timeout
        self._authentication = client.AuthenticationV1Api(api)
        self._rbac = client.RbacAuthorizationV1Api(api)

    @classmethod
    def in_cluster(cls, namespace_file: Path | None = None) -> ReviewedTokenParser:
        """The pod's own ServiceAccount (the kubelet's token, CA and namespace files, the API server's
        address from KUBERNETES_SERVICE_HOST/PORT), as Feast's parser does it."""
        namespace_file = namespace_file or NAMESPACE_FILE
        try:
            config.load_incluster_config()
        except config.ConfigException as exc:
            raise HybridopsError(
                f"Feast auth is kubernetes but this process has no in-cluster Kubernetes configuration ({exc}): "
                "run it in a pod whose ServiceAccount token is mounted (the chart does when feast.auth.mode is "
                "kubernetes), or set auth to no_auth or oidc in the feature_store.yaml"
            ) from exc
        try:
            namespace = namespace_file.read_text().strip()
        except OSError as exc:
            raise HybridopsError(
                f"cannot read the pod's namespace from {namespace_file} ({exc.strerror}): Feast's kubernetes auth "
                "needs the mounted ServiceAccount files"
            ) from exc
        if not namespace:
            raise HybridopsError(f"{namespace_file} is empty: it should name the pod's namespace")
        return cls(client.ApiClient(), namespace)

    async def user_details_from_access_token(self, access_token: str) -> User:
        # The Kubernetes client blocks: in a thread, so that one slow review does not stall every request.
        return await asyncio.to_thread(self.user_details, access_token)

    def user_details(self, access_token: str) -> User:
        """The reviewed user with its roles, or :class:`AuthenticationError` (Feast answers 401)."""
        identity = self.review(access_token)
        roles = self.roles(identity)
        account = identity.service_account
        # Feast's NamespaceBasedPolicy reads a user's namespaces; a ServiceAccount's is its own.
        namespaces = [account[0]] if account else []
        logger.debug("Feast request from %s, roles %s", identity.username, roles or "none")
        return User(
            username=identity.username, roles=roles, groups=list(identity.groups), namespaces=namespaces
        )

    def review(self, access_token: str) -> ReviewedIdentity:
        """The API server's TokenReview of the token: its user when authenticated, else AuthenticationError."""
        if not access_token:
            raise AuthenticationError("no bearer token")
        body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=access_token))
        try:
            answer = self._authentication.create_token_review(body, _request_timeout=self.timeout)
        except Exception as exc:  # any failure to get a review is a refusal, never a pass
            logger.warning("TokenReview failed, request refused: %s", _short(exc))
            raise AuthenticationError("the token could not be reviewed") from exc
        status = answer.status
        user = status.user if status is not None else None
        if status is None or status.authenticated is not True or user is None or not user.username:
            reason = getattr(status, "error", None) or "not authenticated"
            logger.info("TokenReview refused the token: %s", reason)
            raise AuthenticationError("the token was not authenticated by the Kubernetes API server")
        return ReviewedIdentity(username=user.username, groups=tuple(user.groups or ()))

    def roles(self, identity: ReviewedIdentity) -> list[str]:
        """The Roles the RoleBindings of the server's namespace bind to this identity, sorted."""
        try:
            bindings = self._rbac.list_namespaced_role_binding(self.namespace, _request_timeout=self.timeout)
        except Exception as exc:  # without the bindings no role can be granted: refuse rather than guess
            logger.warning(
                "listing RoleBindings in %s failed, request refused: %s", self.namespace, _short(exc)
            )
            raise AuthenticationError("the caller's roles could not be read") from exc
        return sorted(
            {
                binding.role_ref.name
                for binding in bindings.items
                if any(_binds(subject, identity) for subject in binding.subjects or ())
            }
        )


def _binds(subject: Any, identity: ReviewedIdentity) -> bool:
    """Whether an RBAC subject names this identity (as the API server's own RBAC matches subjects)."""
    if subject.kind == "ServiceAccount":
        return identity.service_account == (subject.namespace, subject.name)
    if subject.kind == "User":
        return bool(subject.name == identity.username)
    if subject.kind == "Group":
        return subject.name in identity.groups
    return False


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit]
