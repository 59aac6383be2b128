"""Looking models up in the registry and loading them: ``name@alias``, ``name/version`` or ``name`` (the
champion) to a :class:`ModelVersionInfo`, and its native LightGBM Booster after the checks of
:func:`hybridops.modeling.artifact.fetch_model_text` (no pickle, the registry's SHA-256).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from hybridops.errors import HybridopsError
from hybridops.modeling.artifact import SHA_TAG, TamperedModelError, fetch_model_text
from hybridops.registry.artifact_guard import check_artifact_location
from hybridops.registry.client import parse_model_ref, registry_client
from hybridops.settings import Settings

CHAMPION = "champion"


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version, with what is needed to load and judge it."""

    name: str
    version: str
    run_id: str | None
    source: str  # the version's MLflow source (``models:/m-...`` for MLflow 3 logged models)
    artifact_uri: str  # concrete location of the model files (file://, s3://, mlflow-artifacts:/...)
    sha256: str | None  # hash of model.lgb copied from the run when registered (tag hybridops.model_sha256)
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None

    @property
    def model_uri(self) -> str:
        """The registry URI of this version (``models:/<name>/<version>``)."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class LoadedModel:
    booster: lgb.Booster
    info: ModelVersionInfo
    model_text: bytes  # the verified model file, byte for byte (its SHA-256 is ``info.sha256``)


def champion(settings: Settings) -> ModelVersionInfo | None:
    """The current champion, or None when the model is not registered or has no champion."""
    client = registry_client(settings)
    name = settings.mlflow.model_name
    version = _aliases(client, name, missing_ok=True).get(CHAMPION)
    if version is None:
        return None
    return _info(client, _get_version(client, name, version))


def resolve(settings: Settings, ref: str) -> ModelVersionInfo:
    """Look up ``name@alias``, ``name/version`` or ``name`` (its champion).

    Raises:
        HybridopsError: bad reference, unknown model, alias or version.
    """
    parsed = parse_model_ref(ref)
    client = registry_client(settings)
    if parsed.version is not None:
        return _info(client, _get_version(client, parsed.name, parsed.version))
    alias = parsed.alias or CHAMPION
    version = _aliases(client, parsed.name).get(alias)
    if version is None:
        raise HybridopsError(f"Model {parsed.name!r} has no alias {alias!r} (reference {ref!r}).")
    return _info(client, _get_version(client, parsed.name, version))


def load_model(settings: Settings, ref: str) -> LoadedModel:
    """Resolve ``ref`` and load its native LightGBM Booster after checking the file's SHA-256.

    Raises:
        TamperedModelError: the model file (or the version's hash tag) differs from what was logged.
        UnsafeArtifactLocation: the version's files lie outside the store's artifact root (nothing read).
        HybridopsError: the version has no recorded hash, so it cannot be verified.
    """
    client = registry_client(settings)
    info = resolve(settings, ref)
    if not info.sha256:
        raise HybridopsError(
            f"{info.model_uri} has no {SHA_TAG} tag, so its file cannot be verified; refusing to load it. "
            "Register models with hybridops.registry.register_candidate."
        )
    if info.run_id:
        try:
            run_sha = client.get_run(info.run_id).data.tags.get(SHA_TAG)
        except MlflowException:
            run_sha = None
        if run_sha is not None and run_sha != info.sha256:
            raise TamperedModelError(
                f"{info.model_uri}: the version's {SHA_TAG} ({info.sha256[:12]}…) differs from its run's "
                f"({run_sha[:12]}…); refusing to load it."
            )
    check_artifact_location(settings, info.artifact_uri, info.model_uri)
    text = fetch_model_text(
        info.artifact_uri,
        info.sha256,
        tracking_uri=settings.mlflow_tracking_uri,
        registry_uri=settings.mlflow.registry_uri or settings.mlflow_tracking_uri,
    )
    return LoadedModel(booster=lgb.Booster(model_str=text.decode()), info=info, model_text=text)


# --- helpers -----------------------------------------------------------------------------------------


def _aliases(client: MlflowClient, name: str, missing_ok: bool = False) -> dict[str, str]:
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if missing_ok and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise HybridopsError(f"Registered model {name!r} not found in the MLflow registry ({exc}).") from exc
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    """One model version.

    Raises:
        HybridopsError: the model has no such version.
    """
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise HybridopsError(f"Model {name!r} has no version {version} ({exc}).") from exc


_get_version = get_version


def _info(client: MlflowClient, mv: ModelVersion, with_metrics: bool = True) -> ModelVersionInfo:
    metrics: dict[str, float] = {}
    if mv.run_id and with_metrics:
        try:
            metrics = dict(client.get_run(mv.run_id).data.metrics)
        except MlflowException:
            metrics = {}
    return ModelVersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=mv.source or "",
        artifact_uri=client.get_model_version_download_uri(mv.name, str(mv.version)),
        sha256=(mv.tags or {}).get(SHA_TAG),
        aliases=tuple(mv.aliases or ()),
        metrics=metrics,
        tags=dict(mv.tags or {}),
        description=mv.description or None,
    )
