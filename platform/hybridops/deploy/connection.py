"""The API client of the deploy commands: the current (or named) kube context, else the in-cluster account."""

from __future__ import annotations

import os

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hybridops.deploy.kube import DeployError, _api_message, _call, _get
from hybridops.errors import HybridopsError

CONNECT_TIMEOUT = 5.0


class ClusterUnavailable(HybridopsError):
    """No kubeconfig or in-cluster config, or the API server does not answer."""


def _kubeconfig_files() -> list[str]:
    value = os.environ.get("KUBECONFIG")
    return value.split(os.pathsep) if value else [os.path.expanduser("~/.kube/config")]


def _kubeconfig_hint() -> str:
    value = os.environ.get("KUBECONFIG")
    return f"KUBECONFIG={value}" if value else "KUBECONFIG unset, ~/.kube/config"


def connect(context: str | None = None, timeout: float = CONNECT_TIMEOUT) -> client.ApiClient:
    """An API client for the current (or named) kube context, else the in-cluster service account.

    Raises :class:`ClusterUnavailable` (one line) when there is no configuration or the API server
    does not answer ``/version`` within ``timeout`` seconds.
    """
    configuration = client.Configuration()
    files = _kubeconfig_files()
    try:
        if not any(os.path.isfile(path) for path in files):
            raise config.ConfigException("no such file")
        config.load_kube_config(
            config_file=os.pathsep.join(files), context=context, client_configuration=configuration
        )
    except (config.ConfigException, OSError, ValueError, TypeError) as kube_exc:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            raise ClusterUnavailable(
                f"no reachable Kubernetes cluster: {_kubeconfig_hint()}: {_one_line(kube_exc)}, "
                "and not running in a cluster (set KUBECONFIG or --context)"
            ) from None
    configuration.retries = 0
    api = client.ApiClient(configuration)
    try:
        _call(api, "GET", "/version", timeout=timeout)
    except ApiException as exc:
        raise ClusterUnavailable(
            f"no reachable Kubernetes cluster: {configuration.host} answered {exc.status} {exc.reason} "
            f"({_kubeconfig_hint()}) (set KUBECONFIG or --context)"
        ) from None
    except Exception as exc:  # urllib3 connection errors, timeouts, TLS failures
        raise ClusterUnavailable(
            f"no reachable Kubernetes cluster: {configuration.host} does not answer "
            f"({type(exc).__name__}; {_kubeconfig_hint()}) (set KUBECONFIG or --context)"
        ) from None
    return api


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _ensure_namespace(api: client.ApiClient, namespace: str) -> None:
    if _get(api, f"/api/v1/namespaces/{namespace}") is None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        try:
            _call(api, "POST", "/api/v1/namespaces", body=body)
        except ApiException as exc:
            if exc.status != 409:
                raise DeployError(
                    f"creating namespace {namespace} failed: {exc.status} {_api_message(exc)}"
                ) from None
