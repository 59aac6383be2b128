"""Raw requests to the Kubernetes API for the deploy commands (the ``kubernetes`` client's ``call_api``).

Objects are applied server-side as ``helm`` (Helm 4's field manager, so a later ``helm upgrade`` and
``hybridops deploy`` change each other's objects without field conflicts).
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hybridops.errors import HybridopsError

# Helm 4 server-side applies as "helm" (the binary's name): sharing the manager lets a later
# `helm upgrade` change what hybridops applied without field conflicts, and the other way round.
FIELD_MANAGER = "helm"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
REQUEST_TIMEOUT = 30.0


class DeployError(HybridopsError):
    """The API server refused an object or a revision is missing."""


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x")):
        return lower + "es"
    return lower + "s"


# Objects outside any namespace (the chart renders ClusterRoleBindings: the Feast server's TokenReviews). Their
# API path has no namespace, whatever namespace the release is in.
CLUSTER_SCOPED_KINDS = frozenset(
    {"ClusterRole", "ClusterRoleBinding", "Namespace", "CustomResourceDefinition"}
)


def _path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    if kind in CLUSTER_SCOPED_KINDS:
        namespace = None
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{_plural(kind)}" if namespace else f"{base}/{_plural(kind)}"
    return f"{path}/{name}" if name else path


def _call(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
    timeout: float = REQUEST_TIMEOUT,
) -> Any:
    response = api.call_api(
        path,
        method,
        query_params=query or [],
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
        _request_timeout=timeout,
    )
    data = response.data
    return json.loads(data) if data else None


def _get(api: client.ApiClient, path: str, query: list[tuple[str, str]] | None = None) -> Any | None:
    try:
        return _call(api, "GET", path, query=query)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _describe(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _apply(api: client.ApiClient, obj: dict[str, Any], namespace: str) -> None:
    meta = obj["metadata"]
    if obj["kind"] not in CLUSTER_SCOPED_KINDS:
        meta.setdefault("namespace", namespace)
    path = _path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
    try:
        _call(
            api,
            "PATCH",
            path,
            body=obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
    except ApiException as exc:
        if exc.status == 404 and "/apis/" in path and obj["kind"] not in WORKLOAD_KINDS:
            raise DeployError(
                f"the cluster has no {obj['kind']} ({obj['apiVersion']}) to apply {_describe(obj)}: "
                "install its CRDs or change the values that render it"
            ) from None
        raise DeployError(f"applying {_describe(obj)} failed: {exc.status} {_api_message(exc)}") from None
