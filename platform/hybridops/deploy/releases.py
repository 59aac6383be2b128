"""Helm's release records, written and read without a helm binary, so ``helm`` and ``hybridops`` share them.

Helm 3 and 4 keep each revision of a release in a Secret of the release's namespace (the default
``secrets`` storage driver, ``pkg/storage/driver/secrets.go``):

- name ``sh.helm.release.v1.<release>.v<revision>``, type ``helm.sh/release.v1``;
- labels ``name``, ``owner=helm``, ``status``, ``version`` (+ ``createdAt``/``modifiedAt``, and the
  release's custom labels: here ``hybridops.io/profile``);
- data ``release`` = base64(gzip(JSON of the release)) (``encodeRelease`` in ``driver/util.go``); the
  Secret's ``data`` adds the API's own base64 on top.

The release JSON follows ``pkg/release/v1.Release``: ``name``, ``info`` (``first_deployed``,
``last_deployed``, ``deleted``, ``description``, ``status``, ``notes``), ``chart`` (``metadata``, ``lock``,
``templates``, ``values``, ``schema``, ``files``; file contents as base64, Go's encoding of ``[]byte``),
``config`` (the user-supplied values), ``manifest`` (every rendered document as
``---\\n# Source: <template>\\n<yaml>``, in Helm's install order), ``hooks`` (the chart's hooks, kept out
of the manifest, in ``pkg/release/v1.Hook``'s shape: see :mod:`hybridops.deploy.hooks`), ``version``,
``namespace`` and ``apply_method`` (``ssa``: objects are server-side applied). Zero times are omitted, which Helm 3 and 4 both
read as unset.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

SECRET_TYPE = "helm.sh/release.v1"
SECRET_PREFIX = "sh.helm.release.v1."
PROFILE_LABEL = "hybridops.io/profile"
SYSTEM_LABELS = ("name", "owner", "status", "version", "createdAt", "modifiedAt")
# Helm's release statuses (pkg/release/common/status.go)
DEPLOYED, SUPERSEDED, FAILED, UNINSTALLED = "deployed", "superseded", "failed", "uninstalled"
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")

# Helm's InstallOrder (pkg/release/v1/util/kind_sorter.go): kinds not listed go last, by name.
INSTALL_ORDER = (
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)


@dataclass
class Document:
    """One object of a release's manifest and the template that rendered it."""

    source: str
    obj: dict[str, Any]


@dataclass
class Release:
    """A revision of a release, as Helm stores it (the fields hybridops reads and writes)."""

    name: str
    namespace: str
    version: int
    status: str
    description: str
    manifest: str
    config: dict[str, Any]
    chart: dict[str, Any]
    first_deployed: str
    last_deployed: str
    notes: str = ""
    deleted: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    apply_method: str = "ssa"
    hooks: list[dict[str, Any]] = field(default_factory=list)  # Helm's JSON of each hook (Hook in hook.go)
    extra: dict[str, Any] = field(
        default_factory=dict
    )  # fields of a Helm record hybridops leaves as they are

    @property
    def secret_name(self) -> str:
        return secret_name(self.name, self.version)

    @property
    def profile(self) -> str:
        return self.labels.get(PROFILE_LABEL, "")

    @property
    def chart_ref(self) -> str:
        meta = self.chart.get("metadata") or {}
        return f"{meta.get('name', '?')}-{meta.get('version', '?')}"

    def documents(self) -> list[Document]:
        return split_manifest(self.manifest)

    def to_json(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        for key in ("first_deployed", "last_deployed", "deleted"):
            if getattr(self, key):
                info[key] = getattr(self, key)
        info.update({"description": self.description, "status": self.status})
        if self.notes:
            info["notes"] = self.notes
        body: dict[str, Any] = {
            **self.extra,
            "name": self.name,
            "info": {**(self.extra.get("info") or {}), **info},
            "chart": self.chart,
            "config": self.config,
            "manifest": self.manifest,
            "hooks": self.hooks,
            "version": self.version,
            "namespace": self.namespace,
        }
        if self.apply_method:
            body["apply_method"] = self.apply_method
        return {k: v for k, v in body.items() if v not in (None, "", {}, [])}


def secret_name(release: str, version: int) -> str:
    return f"{SECRET_PREFIX}{release}.v{version}"


def now() -> str:
    """A timestamp as Go's ``time.Time`` marshals one (RFC 3339, UTC)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------- encoding


def encode(release: Release) -> str:
    """``encodeRelease``: base64(gzip(JSON)), the value of the Secret's ``release`` key."""
    raw = json.dumps(release.to_json(), separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=9)).decode()


def decode_json(value: str) -> dict[str, Any]:
    """``decodeRelease``: base64, then gunzip when the gzip magic is there (older records are not)."""
    raw = base64.b64decode(value)
    if raw[:3] == b"\x1f\x8b\x08":
        raw = gzip.decompress(raw)
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError("a release record is not a JSON object")
    return document


def from_json(document: dict[str, Any], labels: dict[str, str] | None = None) -> Release:
    info = dict(document.get("info") or {})
    known = {"name", "info", "chart", "config", "manifest", "hooks", "version", "namespace", "apply_method"}
    hooks = document.get("hooks") or []
    if not isinstance(hooks, list) or not all(isinstance(h, dict) for h in hooks):
        raise ValueError("its hooks are not a list of objects")
    return Release(
        name=str(document.get("name", "")),
        namespace=str(document.get("namespace", "")),
        version=int(document.get("version") or 0),
        status=str(info.get("status") or "unknown"),
        description=str(info.get("description") or ""),
        manifest=str(document.get("manifest") or ""),
        config=dict(document.get("config") or {}),
        chart=dict(document.get("chart") or {}),
        first_deployed=str(info.get("first_deployed") or ""),
        last_deployed=str(info.get("last_deployed") or ""),
        notes=str(info.get("notes") or ""),
        deleted=str(info.get("deleted") or ""),
        labels={k: v for k, v in (labels or {}).items() if k not in SYSTEM_LABELS},
        apply_method=str(document.get("apply_method") or ""),
        hooks=[dict(h) for h in hooks],
        extra={
            **{k: v for k, v in document.items() if k not in known},
            "info": {k: v for k, v in info.items() if k not in Release.__dataclass_fields__},
        },
    )


def secret(release: Release, namespace: str, created: bool) -> dict[str, Any]:
    """The Secret Helm's driver writes for a release (``newSecretsObject``)."""
    stamp = str(int(datetime.now(UTC).timestamp()))
    labels = {
        **release.labels,
        "name": release.name,
        "owner": "helm",
        "status": release.status,
        "version": str(release.version),
        ("createdAt" if created else "modifiedAt"): stamp,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {"name": release.secret_name, "namespace": namespace, "labels": labels},
        "data": {"release": base64.b64encode(encode(release).encode()).decode()},
    }


def from_secret(obj: dict[str, Any]) -> Release:
    """A release from a Secret as the API returns it (``data`` values base64 once more)."""
    value = base64.b64decode((obj.get("data") or {})["release"]).decode()
    return from_json(decode_json(value), (obj.get("metadata") or {}).get("labels") or {})


# ------------------------------------------------------------------------------------------- manifests


def _order(doc: Document) -> tuple[int, str, str]:
    kind = str(doc.obj.get("kind", ""))
    rank = INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)
    return rank, kind if rank == len(INSTALL_ORDER) else "", ""


def documents(rendered: dict[str, str]) -> list[Document]:
    """Every object of a render with its template, in Helm's install order (stable within a kind)."""
    docs = [
        Document(source, doc) for source, text in rendered.items() for doc in yaml.safe_load_all(text) if doc
    ]
    return sorted(docs, key=_order)


def join_manifest(docs: Iterable[Document]) -> str:
    return "".join(
        f"---\n# Source: {d.source}\n{yaml.safe_dump(d.obj, sort_keys=False, width=10_000)}" for d in docs
    )


def split_manifest(manifest: str) -> list[Document]:
    """The documents of a stored manifest (Helm's ``SplitManifests``; ``# Source:`` comments kept)."""
    out = []
    for chunk in manifest.split("\n---"):
        text = chunk.removeprefix("---")
        source = ""
        for line in text.splitlines():
            if line.startswith("# Source: "):
                source = line.removeprefix("# Source: ").strip()
                break
        obj = yaml.safe_load(text)
        if isinstance(obj, dict) and obj:
            out.append(Document(source, obj))
    return out


# ------------------------------------------------------------------------------------------------ chart


def _file(name: str, data: str | bytes) -> dict[str, str]:
    raw = data.encode() if isinstance(data, str) else data
    return {"name": name, "data": base64.b64encode(raw).decode()}


def chart_object(chart_dir: Path) -> dict[str, Any]:
    """The chart as Helm's release record embeds it (``pkg/chart/v2.Chart``), loaded by Helm's own loader."""
    chart = helm.Chart.load(str(chart_dir))
    try:
        metadata, templates, files, values = chart.metadata, chart.templates, chart.files, chart.values
    finally:
        chart.close()
    schema_path = chart_dir / "values.schema.json"
    lock_path = chart_dir / "Chart.lock"
    return {
        "metadata": metadata,
        "lock": yaml.safe_load(lock_path.read_text()) if lock_path.is_file() else None,
        "templates": [_file(t["name"], t["data"]) for t in templates],
        "values": values,
        "schema": base64.b64encode(schema_path.read_bytes()).decode() if schema_path.is_file() else None,
        "files": [_file(f["name"], f["data"]) for f in files],
    }
