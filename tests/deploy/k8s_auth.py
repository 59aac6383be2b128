"""The Kubernetes API double's authentication and RBAC (:class:`k8s_double.K8sDouble` inherits it).

ServiceAccount tokens are JWTs signed with the double's own key; TokenReviews authenticate only a token it
issued that has not expired; RBAC is evaluated over the Roles, RoleBindings and ClusterRoleBindings the
double holds, plus the built-in ClusterRole ``system:auth-delegator``.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
# Built into every cluster: what the chart binds the Feast server to for TokenReviews.
BUILTIN_CLUSTER_ROLES = {
    "system:auth-delegator": [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
    ]
}


class ApiAuth:
    """Authentication and authorization over the fields :class:`k8s_double.K8sDouble` declares."""

    objects: dict[str, dict[str, Any]]
    identities: dict[str, str]
    signing_key: rsa.RSAPrivateKey
    canned_reviews: dict[str, dict[str, Any]]

    def service_account_token(self, namespace: str, name: str, expires_in: float | None = None) -> str:
        """A token of this ServiceAccount, as the kubelet mounts it (a JWT whose subject names it);
        ``expires_in`` seconds: a bound token with an ``exp`` claim (negative: already expired)."""
        username = f"system:serviceaccount:{namespace}:{name}"
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": username,
            "aud": [ISSUER],
            "kubernetes.io": {"namespace": namespace},
        }
        if expires_in is not None:
            claims["exp"] = int(time.time() + expires_in)
        token = jwt.encode(claims, self.signing_key, algorithm="RS256")
        self.identities[token] = username
        return token

    def authenticate(self, token: str) -> tuple[str | None, str]:
        """(username, "") for a token this API server issued and that has not expired, else (None, why)."""
        username = self.identities.get(token)
        if username is None:
            return None, "invalid bearer token"
        try:  # the signature and expiry, as the API server's ServiceAccount authenticator checks them
            jwt.decode(token, self.signing_key.public_key(), algorithms=["RS256"], audience=ISSUER)
        except jwt.ExpiredSignatureError:
            return None, "[invalid bearer token, service account token has expired]"
        except jwt.DecodeError:
            pass  # an opaque token a test put in `identities` (a person's, as another authenticator's)
        return username, ""

    def token_review(self, body: dict[str, Any]) -> dict[str, Any]:
        canned = self.canned_reviews.get(body["spec"]["token"])
        if canned is not None:
            return {**body, "status": canned}
        username, error = self.authenticate(body["spec"]["token"])
        if username is None:
            status: dict[str, Any] = {"authenticated": False, "error": error}
        else:
            groups = ["system:authenticated"]
            if username.startswith("system:serviceaccount:"):
                groups = [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{username.split(':')[2]}",
                    *groups,
                ]
            status = {"authenticated": True, "user": {"username": username, "groups": groups}}
        return {**body, "status": status}

    def allowed(self, username: str, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        """RBAC: a ClusterRoleBinding grants its ClusterRole everywhere, a RoleBinding its Role (or
        ClusterRole) in its own namespace only, and nothing outside namespaces."""
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        bindings = [o for k, o in self.objects.items() if k.startswith(f"{rbac}/clusterrolebindings/")]
        if namespace is not None:
            prefix = f"{rbac}/namespaces/{namespace}/rolebindings/"
            bindings += [o for k, o in self.objects.items() if k.startswith(prefix)]
        for binding in bindings:
            if not any(_names(subject, username) for subject in binding.get("subjects") or []):
                continue
            ref = binding["roleRef"]
            if ref["kind"] == "ClusterRole":
                rules = BUILTIN_CLUSTER_ROLES.get(ref["name"]) or (
                    self.objects.get(f"{rbac}/clusterroles/{ref['name']}") or {}
                ).get("rules", [])
            else:
                ns = binding["metadata"]["namespace"]
                rules = (self.objects.get(f"{rbac}/namespaces/{ns}/roles/{ref['name']}") or {}).get(
                    "rules", []
                )
            for rule in rules or []:
                if (
                    _has(rule.get("apiGroups"), group)
                    and _has(rule.get("resources"), resource)
                    and _has(rule.get("verbs"), verb)
                ):
                    return True
        return False


def _names(subject: dict[str, Any], username: str) -> bool:
    if subject["kind"] == "ServiceAccount":
        return username == f"system:serviceaccount:{subject['namespace']}:{subject['name']}"
    return subject["kind"] == "User" and subject["name"] == username


def _has(values: list[str] | None, wanted: str) -> bool:
    return bool(values) and (wanted in values or "*" in values)  # type: ignore[operator]


def request_attributes(method: str, path: str) -> tuple[str, str, str, str | None]:
    """RBAC's view of a request: (verb, API group, resource, namespace)."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    named = len(rest) > 1
    verb = {"GET": "get" if named else "list", "POST": "create", "PUT": "update", "PATCH": "patch"}.get(
        method, "delete"
    )
    # A subresource (jobs/NAME/status, pods/NAME/log) is its own resource to RBAC: "jobs/status".
    resource = f"{rest[0]}/{rest[2]}" if len(rest) > 2 else rest[0] if rest else ""
    return verb, group, resource, namespace
