"""Applying a release's objects as Helm does: kept Secrets and their checksums reconciled with the live
ones, Helm's ownership metadata set and checked (never take over another release's objects), and objects the
previous revision had and the new one has not pruned."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hybridops.deploy import releases
from hybridops.deploy.kube import WORKLOAD_KINDS, DeployError, _api_message, _call, _get, _path

KEEP_ANNOTATION = "helm.sh/resource-policy"


def _reconcile(
    api: client.ApiClient,
    objects: list[dict[str, Any]],
    namespace: str,
    template_hashes: set[str] | None,
) -> list[dict[str, Any]]:
    for obj in objects:
        meta = obj["metadata"]
        ns = meta.get("namespace") or namespace
        if obj["kind"] == "Secret" and (meta.get("annotations") or {}).get(KEEP_ANNOTATION) == "keep":
            live = _get(api, _path("v1", "Secret", ns, meta["name"]))
            if live and live.get("data"):
                obj["data"] = {**(obj.get("data") or {}), **live["data"]}
        elif obj["kind"] in WORKLOAD_KINDS:
            template_meta = obj["spec"]["template"].setdefault("metadata", {})
            notes = template_meta.get("annotations") or {}
            checksums = {
                k: v
                for k, v in notes.items()
                if k.startswith("checksum/") and (template_hashes is None or v not in template_hashes)
            }
            if not checksums or template_hashes is None:
                continue
            live = _get(api, _path(obj["apiVersion"], obj["kind"], ns, meta["name"]))
            live_notes = ((live or {}).get("spec", {}).get("template", {}).get("metadata") or {}).get(
                "annotations"
            ) or {}
            for key in checksums:
                if key in live_notes:
                    notes[key] = live_notes[key]
    return objects


def _key(obj: dict[str, Any], namespace: str) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") or namespace, meta["name"])


def _prune(
    api: client.ApiClient,
    previous: list[dict[str, Any]],
    current: list[dict[str, Any]],
    namespace: str,
) -> list[str]:
    keep = {_key(o, namespace) for o in current}
    pruned = []
    for obj in previous:
        if _key(obj, namespace) in keep:
            continue
        if (obj["metadata"].get("annotations") or {}).get(KEEP_ANNOTATION) == "keep":
            continue
        api_version, kind, ns, name = _key(obj, namespace)
        try:
            _call(api, "DELETE", _path(api_version, kind, ns, name))
            pruned.append(f"{kind}/{name}")
        except ApiException as exc:
            if exc.status != 404:
                raise DeployError(
                    f"deleting {kind}/{name} failed: {exc.status} {_api_message(exc)}"
                ) from None
    return pruned


def _ownership(obj: dict[str, Any], release: str, namespace: str) -> dict[str, Any]:
    """The object with Helm's ownership metadata (``setMetadataVisitor``): helm adopts only such objects."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta["labels"] = {**(meta.get("labels") or {}), "app.kubernetes.io/managed-by": "Helm"}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        "meta.helm.sh/release-name": release,
        "meta.helm.sh/release-namespace": namespace,
    }
    return obj


def _check_ownership(
    api: client.ApiClient,
    docs: list[releases.Document],
    current: releases.Release | None,
    release: str,
    namespace: str,
) -> None:
    """Helm's ``existingResourceConflict``: an object the release did not have may exist only if it
    already belongs to this release (Helm's ownership metadata); never take over another release's objects
    or objects made by hand."""
    had = {_key(d.obj, namespace) for d in current.documents()} if current else set()
    for doc in docs:
        if _key(doc.obj, namespace) in had:
            continue
        api_version, kind, ns, name = _key(doc.obj, namespace)
        live = _get(api, _path(api_version, kind, ns, name))
        if live is None:
            continue
        meta = live.get("metadata") or {}
        notes, labels = meta.get("annotations") or {}, meta.get("labels") or {}
        owner = (notes.get("meta.helm.sh/release-name"), notes.get("meta.helm.sh/release-namespace"))
        if owner != (release, namespace) or labels.get("app.kubernetes.io/managed-by") != "Helm":
            found = f"release {owner[0]} in {owner[1]}" if owner[0] else "no Helm release"
            raise DeployError(
                f"{kind}/{name} already exists in {ns} and belongs to {found}: it cannot be taken into release "
                f"{release} (Helm's ownership metadata differs); delete it, or deploy under another "
                "--release or --namespace"
            )
