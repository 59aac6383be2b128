"""Where a release's revisions live: Helm's records (Secrets, :mod:`hybridops.deploy.releases` for their
format) read, created and updated through the API, and the records older hybridops wrote
(``hybridops-release-<release>-v<N>``) read and migrated to Helm's."""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hybridops.deploy import chart, releases
from hybridops.deploy.connection import _one_line
from hybridops.deploy.kube import DeployError, _api_message, _call, _get

OWNER_LABEL = "owner"


@dataclass
class Revision:
    number: int
    status: str
    profile: str
    deployed_at: str
    description: str
    chart: str = ""


def _unpack(data: str) -> str:
    return gzip.decompress(base64.b64decode(data)).decode()


def _secret_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/secrets" + (f"/{name}" if name else "")


def _records(api: client.ApiClient, namespace: str, release: str) -> list[releases.Release]:
    """Helm's records of a release (written by helm or by hybridops), oldest first."""
    found = _get(api, _secret_path(namespace), query=[("labelSelector", f"owner=helm,name={release}")])
    out = []
    for item in (found or {}).get("items") or []:
        try:
            out.append(releases.from_secret(item))
        except (KeyError, ValueError, OSError) as exc:
            raise DeployError(
                f"Secret {item['metadata']['name']} in {namespace} is not a readable Helm release record "
                f"({_one_line(exc)}): inspect it with kubectl, delete it if it is stray"
            ) from None
    return sorted(out, key=lambda r: r.version)


def _legacy_secrets(api: client.ApiClient, namespace: str, release: str) -> list[dict[str, Any]]:
    """Records of hybridops before it wrote Helm's (``hybridops-release-<release>-v<N>``)."""
    found = _get(
        api, _secret_path(namespace), query=[("labelSelector", f"{OWNER_LABEL}=hybridops,release={release}")]
    )
    items = (found or {}).get("items") or []
    return sorted(items, key=lambda s: int(s["metadata"]["labels"]["revision"]))


def _from_legacy(
    secret: dict[str, Any], namespace: str, release: str, chart_obj: dict[str, Any]
) -> releases.Release:
    labels = secret["metadata"].get("labels") or {}
    notes = secret["metadata"].get("annotations") or {}
    data = secret.get("data") or {}
    objects = [doc for doc in yaml.safe_load_all(_unpack(data["manifests"])) if doc]
    values = (yaml.safe_load(_unpack(data["values"])) if "values" in data else None) or {}
    stamp = notes.get("hybridops/deployed-at", "").replace("+00:00", "Z")
    status = labels.get("status", "unknown")
    profile = notes.get("hybridops/profile", "")
    return releases.Release(
        name=release,
        namespace=namespace,
        version=int(labels["revision"]),
        status=releases.FAILED if status == "pending" else status,
        description=notes.get("hybridops/description", ""),
        manifest=releases.join_manifest(releases.Document("", o) for o in objects),
        config=values,
        # the old records kept no chart: the chart of this hybridops stands in for it
        chart=chart_obj,
        first_deployed=stamp,
        last_deployed=stamp,
        labels={releases.PROFILE_LABEL: profile} if profile else {},
    )


def history(api: client.ApiClient, namespace: str, release: str) -> list[releases.Release]:
    """Every revision of a release: Helm's records, else those hybridops wrote in its old format."""
    found = _records(api, namespace, release)
    if found:
        return found
    legacy = _legacy_secrets(api, namespace, release)
    if not legacy:
        return []
    chart_obj = releases.chart_object(chart.CHART_DIR)
    out = [_from_legacy(s, namespace, release, chart_obj) for s in legacy]
    first = out[0].first_deployed
    for rel in out:
        rel.first_deployed = first
    return out


def _migrate(api: client.ApiClient, namespace: str, release: str) -> list[releases.Release]:
    """Rewrite old-format records as Helm's (same revisions), then delete the old ones."""
    found = _records(api, namespace, release)
    if found:
        return found
    converted = history(api, namespace, release)
    for rel in converted:
        _create_record(api, namespace, rel)
    for secret in _legacy_secrets(api, namespace, release):
        _call(api, "DELETE", _secret_path(namespace, secret["metadata"]["name"]))
    return converted


def revisions(api: client.ApiClient, namespace: str, release: str) -> list[Revision]:
    return [
        Revision(
            number=r.version,
            status=r.status,
            profile=r.profile,
            deployed_at=r.last_deployed,
            description=r.description,
            chart=r.chart_ref,
        )
        for r in history(api, namespace, release)
    ]


def _create_record(api: client.ApiClient, namespace: str, rel: releases.Release) -> None:
    """Helm's ``Create``: fails when the revision exists (another install/upgrade/rollback won the race)."""
    try:
        _call(api, "POST", _secret_path(namespace), body=releases.secret(rel, namespace, created=True))
    except ApiException as exc:
        if exc.status == 409:
            raise DeployError(
                f"release {rel.name} revision {rel.version} already exists in {namespace}: another "
                "install, upgrade or rollback is running; retry when it is done"
            ) from None
        raise DeployError(
            f"recording release {rel.name} revision {rel.version} failed: {exc.status} {_api_message(exc)}"
        ) from None


def _update_record(api: client.ApiClient, namespace: str, rel: releases.Release) -> None:
    """Helm's ``Update``: replace the revision's Secret."""
    try:
        _call(
            api, "PUT", _secret_path(namespace, rel.secret_name), body=releases.secret(rel, namespace, False)
        )
    except ApiException as exc:
        raise DeployError(
            f"updating release {rel.name} revision {rel.version} failed: {exc.status} {_api_message(exc)}"
        ) from None
