"""Registered model versions, their champion/challenger aliases, the alias history and rollback.

Aliases of the registered model ``settings.mlflow.model_name``:

* ``challenger``: the latest registered candidate (set by :func:`register_candidate`);
* ``champion``: the version that serves (moved only by :func:`promote`, :func:`apply_gate` and
  :func:`rollback`);
* ``previous_champion``: the champion that the last promotion replaced. It is an MLflow alias rather than
  a registered-model tag so that it is visible next to the others in the UI, resolvable as
  ``flight_delay@previous_champion`` and always points at an existing version (MLflow drops an alias
  with its version). :func:`rollback` moves ``champion`` back to it and removes it, so a second rollback
  in a row is refused instead of restoring the model that was just rolled back.

Every alias change is recorded twice, with its reason: as a row of the DuckDB table
``model_alias_events`` in the warehouse, and as a tag ``hybridops.alias_event.<n>`` (a JSON object,
``n`` counting from 1 per version) on each model version the change involves, so the registry itself
also tells the story.

Models are loaded from their native LightGBM text file after a SHA-256 check; nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import lightgbm as lgb
import pandas as pd
import pyarrow as pa
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from hybridops.errors import HybridopsError
from hybridops.modeling.artifact import SHA_TAG, TamperedModelError, load_booster
from hybridops.registry.artifact_guard import check_artifact_location
from hybridops.registry.client import parse_model_ref, registry_client
from hybridops.registry.gate import GateDecision, decide
from hybridops.settings import Settings
from hybridops.warehouse.db import append_rows, connect, exists, read_frame, table_exists

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

EVENTS_TABLE = "model_alias_events"
EVENT_TAG_PREFIX = "hybridops.alias_event."
GATE_TAG = "hybridops.gate_decision"
GATE_PROMOTE_TAG = "hybridops.gate_promote"
DEFAULT_ACTOR = "hybridops"

EVENT_COLUMNS = ["at", "model_name", "alias", "from_version", "to_version", "reason", "actor", "run_id"]
_COLUMNS_SQL = ", ".join(f'"{column}"' for column in EVENT_COLUMNS)  # "at" is a DuckDB keyword
# Explicit types: the first event has no from_version, and a column inferred from None would not be text.
_EVENTS_SCHEMA = pa.schema(
    [
        ("at", pa.timestamp("us")),
        ("model_name", pa.string()),
        ("alias", pa.string()),
        ("from_version", pa.string()),
        ("to_version", pa.string()),
        ("reason", pa.string()),
        ("actor", pa.string()),
        ("run_id", pa.string()),
    ]
)


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


@dataclass(frozen=True)
class AliasEvent:
    at: datetime
    model_name: str
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str
    actor: str
    run_id: str | None


# --- the alias history ------------------------------------------------------------------------------


def record_alias_event(
    settings: Settings,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    reason: str,
    *,
    actor: str = DEFAULT_ACTOR,
    run_id: str | None = None,
    client: MlflowClient | None = None,
) -> AliasEvent:
    """Record one alias change (already made) in the warehouse and as tags on the versions involved."""
    event = AliasEvent(
        at=datetime.now(UTC).replace(tzinfo=None),
        model_name=settings.mlflow.model_name,
        alias=alias,
        from_version=None if from_version is None else str(from_version),
        to_version=None if to_version is None else str(to_version),
        reason=reason,
        actor=actor,
        run_id=run_id,
    )
    row = pa.Table.from_pylist([{column: getattr(event, column) for column in EVENT_COLUMNS}], _EVENTS_SCHEMA)
    with connect(settings) as con:
        append_rows(con, EVENTS_TABLE, row)

    client = client or registry_client(settings)
    payload = json.dumps(
        {
            "at": event.at.isoformat(timespec="microseconds") + "Z",
            "alias": alias,
            "from_version": event.from_version,
            "to_version": event.to_version,
            "reason": reason[:20_000],
            "actor": actor,
            "run_id": run_id,
        }
    )
    for version in dict.fromkeys(v for v in (event.to_version, event.from_version) if v is not None):
        try:
            existing = client.get_model_version(event.model_name, version).tags
        except MlflowException:
            continue  # the version was deleted: the warehouse row is the record
        n = 1 + sum(1 for key in existing if key.startswith(EVENT_TAG_PREFIX))
        client.set_model_version_tag(event.model_name, version, f"{EVENT_TAG_PREFIX}{n}", payload)
    return event


def alias_history(settings: Settings, model_name: str | None = None) -> pd.DataFrame:
    """Every recorded alias change of the model (default ``settings.mlflow.model_name``), oldest first."""
    name = model_name or settings.mlflow.model_name
    if not exists(settings):
        return pd.DataFrame(columns=EVENT_COLUMNS)
    with connect(settings) as con:
        if not table_exists(con, EVENTS_TABLE):
            return pd.DataFrame(columns=EVENT_COLUMNS)
        return read_frame(
            con,
            f'select {_COLUMNS_SQL} from {EVENTS_TABLE} where model_name = ? order by "at"',
            [name],
        )


def version_events(settings: Settings, version: str) -> list[dict[str, object]]:
    """The alias events recorded as tags on one model version, in order."""
    tags = _get_version(registry_client(settings), settings.mlflow.model_name, str(version)).tags
    keyed = [
        (int(key[len(EVENT_TAG_PREFIX) :]), value)
        for key, value in tags.items()
        if key.startswith(EVENT_TAG_PREFIX) and key[len(EVENT_TAG_PREFIX) :].isdigit()
    ]
    return [json.loads(value) for _, value in sorted(keyed)]


# --- registration, promotion and rollback ------------------------------------------------------------


def register_candidate(
    settings: Settings,
    model_uri: str,
    run_id: str,
    sha256: str,
    description: str = "",
    *,
    actor: str = DEFAULT_ACTOR,
    pipeline_run_id: str | None = None,
) -> str:
    """Register a logged model as a new version, tag it with its hash and make it the ``challenger``.

    ``model_uri``, ``run_id`` and ``sha256`` are those of :func:`hybridops.modeling.artifact.log_booster`.
    ``pipeline_run_id`` is the orchestrator's run id, recorded with the alias event.

    Returns:
        The new version (a string, as MLflow spells versions).
    """
    client = registry_client(settings)
    name = settings.mlflow.model_name
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise HybridopsError(f"Cannot register {model_uri}: MLflow run {run_id} not found ({exc}).") from exc
    run_sha = run.data.tags.get(SHA_TAG)
    if run_sha is not None and run_sha != sha256:
        raise TamperedModelError(
            f"Cannot register {model_uri}: sha256 {sha256[:12]}… differs from the run's tag "
            f"{SHA_TAG}={run_sha[:12]}…."
        )
    _ensure_registered_model(client, name)
    model_id = model_uri[len("models:/") :] if model_uri.startswith("models:/m-") else None
    version = client.create_model_version(
        name=name,
        source=model_uri,
        run_id=run_id,
        tags={SHA_TAG: sha256},
        description=description or None,
        model_id=model_id,
    ).version
    version = str(version)
    previous = _aliases(client, name).get(CHALLENGER)
    client.set_registered_model_alias(name, CHALLENGER, version)
    record_alias_event(
        settings,
        CHALLENGER,
        previous,
        version,
        f"registered version {version} from run {run_id}" + (f": {description}" if description else ""),
        actor=actor,
        run_id=pipeline_run_id,
        client=client,
    )
    return version


def promote(
    settings: Settings,
    version: str,
    reason: str,
    *,
    actor: str = DEFAULT_ACTOR,
    run_id: str | None = None,
) -> tuple[str | None, str]:
    """Make ``version`` the ``champion``; the replaced champion becomes ``previous_champion``.

    A version that is the ``challenger`` loses that alias. Promoting the current champion is a no-op.
    ``run_id`` is the orchestrator's run id, recorded with the events.

    Returns:
        ``(previous champion version or None, version)``.
    """
    client = registry_client(settings)
    name = settings.mlflow.model_name
    version = str(version)
    _get_version(client, name, version)
    aliases = _aliases(client, name)
    old = aliases.get(CHAMPION)
    if old == version:
        return old, version

    def record(alias: str, before: str | None, after: str | None, why: str) -> None:
        record_alias_event(settings, alias, before, after, why, actor=actor, run_id=run_id, client=client)

    if old is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, old)
        record(
            PREVIOUS_CHAMPION,
            aliases.get(PREVIOUS_CHAMPION),
            old,
            f"champion {old} replaced by {version}: {reason}",
        )
    client.set_registered_model_alias(name, CHAMPION, version)
    record(CHAMPION, old, version, reason)
    if aliases.get(CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
        record(CHALLENGER, version, None, f"promoted to champion: {reason}")
    return old, version


def rollback(
    settings: Settings,
    reason: str,
    *,
    actor: str = DEFAULT_ACTOR,
    run_id: str | None = None,
) -> tuple[str | None, str]:
    """Move ``champion`` back to ``previous_champion`` (which is then cleared).

    Returns:
        ``(the champion rolled back from, the restored champion)``.

    Raises:
        HybridopsError: there is no previous champion to return to.
    """
    client = registry_client(settings)
    name = settings.mlflow.model_name
    aliases = _aliases(client, name, missing_ok=True)
    target = aliases.get(PREVIOUS_CHAMPION)
    current = aliases.get(CHAMPION)
    if target is None:
        raise HybridopsError(
            f"Cannot roll back model {name!r}: it has no previous champion (alias {PREVIOUS_CHAMPION!r} "
            f"is unset; the champion is {current or 'unset'}). A rollback needs a promotion that replaced "
            "a champion, and each such promotion allows one rollback; to restore an older version, "
            "promote it explicitly."
        )
    client.set_registered_model_alias(name, CHAMPION, target)
    record_alias_event(
        settings, CHAMPION, current, target, f"rollback: {reason}", actor=actor, run_id=run_id, client=client
    )
    client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
    record_alias_event(
        settings,
        PREVIOUS_CHAMPION,
        target,
        None,
        f"rollback restored {target} as champion: {reason}",
        actor=actor,
        run_id=run_id,
        client=client,
    )
    return current, target


def apply_gate(
    settings: Settings,
    version: str,
    candidate_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    *,
    actor: str = DEFAULT_ACTOR,
    run_id: str | None = None,
) -> GateDecision:
    """Run the promotion gate on ``version`` and promote it when it passes.

    Both metric sets must come from the same holdout. The decision is tagged on the version
    (``hybridops.gate_decision``, ``hybridops.gate_promote``) whether or not it promotes.

    Raises:
        HybridopsError: a champion exists but ``champion_metrics`` is None.
    """
    client = registry_client(settings)
    name = settings.mlflow.model_name
    version = str(version)
    _get_version(client, name, version)
    current = _aliases(client, name).get(CHAMPION)
    if current == version:
        raise HybridopsError(f"Version {version} of {name!r} is already the champion; nothing to gate.")
    if current is not None and champion_metrics is None:
        raise HybridopsError(
            f"Model {name!r} has champion version {current}: evaluate it on the candidate's holdout and "
            "pass its metrics, the gate compares the two on the same data."
        )
    decision = decide(
        dict(candidate_metrics), None if current is None else dict(champion_metrics or {}), settings.gate
    )
    client.set_model_version_tag(name, version, GATE_TAG, decision.reason)
    client.set_model_version_tag(name, version, GATE_PROMOTE_TAG, str(decision.promote).lower())
    if decision.promote:
        promote(settings, version, decision.reason, actor=actor, run_id=run_id)
    return decision


# --- lookup and loading ------------------------------------------------------------------------------


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
    with _tracking_uri(settings):
        booster = load_booster(info.artifact_uri, info.sha256)
    return LoadedModel(booster=booster, info=info)


# --- helpers -----------------------------------------------------------------------------------------


@contextmanager
def _tracking_uri(settings: Settings) -> Iterator[None]:
    """Point MLflow's fluent API at the settings' store while downloading (mlflow-artifacts:/ URIs)."""
    import mlflow

    old_tracking, old_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.registry_uri or settings.mlflow_tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_tracking)
        mlflow.set_registry_uri(old_registry)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name)
        except MlflowException as race:
            if race.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise


def _aliases(client: MlflowClient, name: str, missing_ok: bool = False) -> dict[str, str]:
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if missing_ok and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise HybridopsError(f"Registered model {name!r} not found in the MLflow registry ({exc}).") from exc
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def _get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise HybridopsError(f"Model {name!r} has no version {version} ({exc}).") from exc


def _info(client: MlflowClient, mv: ModelVersion) -> ModelVersionInfo:
    metrics: dict[str, float] = {}
    if mv.run_id:
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
