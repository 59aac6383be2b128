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

Every alias change is recorded, with its reason, in the warehouse and on the versions involved
(:mod:`hybridops.registry.alias_events`). Alias moves run under a lock held in the registry itself
(:mod:`hybridops.registry.lock`), so concurrent promotions, rollbacks and registrations are serialized and
each records the alias as it really was. A registration with a training fingerprint is idempotent: the same
training registered twice, even by processes racing, ends as one version.

Models are loaded from their native LightGBM text file after a SHA-256 check; nothing is unpickled.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from hybridops.errors import HybridopsError
from hybridops.modeling.artifact import SHA_TAG, TamperedModelError
from hybridops.registry.alias_events import (
    DEFAULT_ACTOR,
    EVENT_COLUMNS,
    EVENT_TAG_PREFIX,
    EVENTS_TABLE,
    AliasEvent,
    alias_history,
    new_event,
    persist_events,
    record_alias_event,
    version_events,
)
from hybridops.registry.client import registry_client
from hybridops.registry.gate import GateDecision, decide
from hybridops.registry.lock import alias_lock
from hybridops.registry.lookup import (
    CHAMPION,
    LoadedModel,
    ModelVersionInfo,
    _aliases,
    _get_version,
    _info,
    champion,
    get_version,
    load_model,
    resolve,
)
from hybridops.settings import Settings

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_ACTOR",
    "EVENTS_TABLE",
    "EVENT_COLUMNS",
    "EVENT_TAG_PREFIX",
    "PREVIOUS_CHAMPION",
    "AliasEvent",
    "LoadedModel",
    "ModelVersionInfo",
    "alias_history",
    "apply_gate",
    "champion",
    "gate_decisions",
    "get_version",
    "load_model",
    "promote",
    "record_alias_event",
    "register_candidate",
    "resolve",
    "rollback",
    "version_events",
]

CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

GATE_TAG = "hybridops.gate_decision"
GATE_PROMOTE_TAG = "hybridops.gate_promote"
GATE_AT_TAG = "hybridops.gate_decided_at"
FINGERPRINT_TAG = "hybridops.training_fingerprint"
REPLACED_TAG = "hybridops.replaced_champion"  # on a champion: the version it replaced ("" for none)


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
    fingerprint: str | None = None,
) -> str:
    """Register a logged model as a new version, tag it with its hash and make it the ``challenger``.

    ``model_uri``, ``run_id`` and ``sha256`` are those of :func:`hybridops.modeling.artifact.log_booster`.
    ``pipeline_run_id`` is the orchestrator's run id, recorded with the alias event. ``fingerprint``
    identifies the training (data, split, features, parameters): a version already registered with the
    same fingerprint is returned instead of a new one, also when several processes register the same
    training at once (each creates its version, then searches again; all but the lowest version are
    deleted and every caller gets the lowest).

    Returns:
        The version (a string, as MLflow spells versions).
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
    if fingerprint:
        existing = _versions_with_fingerprint(client, name, fingerprint)
        if existing:
            return existing[0]
    tags = {SHA_TAG: sha256, **({FINGERPRINT_TAG: fingerprint} if fingerprint else {})}
    model_id = model_uri[len("models:/") :] if model_uri.startswith("models:/m-") else None
    version = client.create_model_version(
        name=name,
        source=model_uri,
        run_id=run_id,
        tags=tags,
        description=description or None,
        model_id=model_id,
    ).version
    version = str(version)
    if fingerprint:
        # Check-then-act is not enough: another process may have created the same training meanwhile.
        # Every racer searches after its create; the lowest version wins and the others remove theirs.
        winner = _versions_with_fingerprint(client, name, fingerprint)[0]
        if winner != version:
            client.delete_model_version(name, version)
            return winner
    with alias_lock(client, name):
        previous = _aliases(client, name).get(CHALLENGER)
        client.set_registered_model_alias(name, CHALLENGER, version)
        event = new_event(
            settings,
            CHALLENGER,
            previous,
            version,
            f"registered version {version} from run {run_id}" + (f": {description}" if description else ""),
            actor=actor,
            run_id=pipeline_run_id,
        )
    persist_events(settings, [event], client)
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
    events: list[AliasEvent] = []
    with alias_lock(client, name):
        result = _promote_locked(settings, client, version, reason, actor, run_id, events)
    persist_events(settings, events, client)
    return result


def _promote_locked(
    settings: Settings,
    client: MlflowClient,
    version: str,
    reason: str,
    actor: str,
    run_id: str | None,
    events: list[AliasEvent],
) -> tuple[str | None, str]:
    """Move the aliases (the caller holds the lock); the changes are appended to ``events``."""
    name = settings.mlflow.model_name
    aliases = _aliases(client, name)
    old = aliases.get(CHAMPION)
    if old == version:
        return old, version

    def record(alias: str, before: str | None, after: str | None, why: str) -> None:
        events.append(new_event(settings, alias, before, after, why, actor=actor, run_id=run_id))

    # Order matters for a write that fails half-way. The tag naming the replaced champion changes nothing
    # by itself; moving `champion` is the one step that commits; `previous_champion` follows it, and if
    # that write is lost, rollback still finds the replaced version in the champion's tag. Writing
    # `previous_champion` first (as before) left it moved for a promotion that then failed.
    client.set_model_version_tag(name, version, REPLACED_TAG, old or "")
    client.set_registered_model_alias(name, CHAMPION, version)
    record(CHAMPION, old, version, reason)
    if old is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, old)
        record(
            PREVIOUS_CHAMPION,
            aliases.get(PREVIOUS_CHAMPION),
            old,
            f"champion {old} replaced by {version}: {reason}",
        )
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
    """Move ``champion`` back to the version it replaced; ``previous_champion`` is then cleared.

    The version returned to is the one the champion's promotion recorded (tag
    ``hybridops.replaced_champion``), which ``previous_champion`` names too unless a promotion failed after
    moving the champion.

    Returns:
        ``(the champion rolled back from, the restored champion)``.

    Raises:
        HybridopsError: there is no previous champion to return to.
    """
    client = registry_client(settings)
    name = settings.mlflow.model_name
    with alias_lock(client, name):
        aliases = _aliases(client, name, missing_ok=True)
        alias_target = aliases.get(PREVIOUS_CHAMPION)
        current = aliases.get(CHAMPION)
        target = alias_target
        if alias_target is not None and current is not None:
            replaced = (_get_version(client, name, current).tags or {}).get(REPLACED_TAG)
            target = replaced or alias_target
        if target is None or target == current:
            raise HybridopsError(
                f"Cannot roll back model {name!r}: it has no previous champion (alias {PREVIOUS_CHAMPION!r} "
                f"is unset; the champion is {current or 'unset'}). A rollback needs a promotion that "
                "replaced a champion, and each such promotion allows one rollback; to restore an older "
                "version, promote it explicitly."
            )
        _get_version(client, name, target)
        client.set_registered_model_alias(name, CHAMPION, target)
        events = [
            new_event(settings, CHAMPION, current, target, f"rollback: {reason}", actor=actor, run_id=run_id)
        ]
        client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
        events.append(
            new_event(
                settings,
                PREVIOUS_CHAMPION,
                alias_target,
                None,
                f"rollback restored {target} as champion: {reason}",
                actor=actor,
                run_id=run_id,
            )
        )
    persist_events(settings, events, client)
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
    (``hybridops.gate_decision``, ``hybridops.gate_promote``, ``hybridops.gate_decided_at``) whether or not
    it promotes; a refusal leaves every alias where it was.

    Raises:
        HybridopsError: a champion exists but ``champion_metrics`` is None.
    """
    client = registry_client(settings)
    name = settings.mlflow.model_name
    version = str(version)
    _get_version(client, name, version)
    events: list[AliasEvent] = []
    with alias_lock(client, name):
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
        client.set_model_version_tag(name, version, GATE_AT_TAG, f"{time.time():.3f}")
        client.set_model_version_tag(name, version, GATE_PROMOTE_TAG, str(decision.promote).lower())
        if decision.promote:
            _promote_locked(settings, client, version, decision.reason, actor, run_id, events)
    persist_events(settings, events, client)
    return decision


def gate_decisions(settings: Settings) -> list[ModelVersionInfo]:
    """The versions of the model the gate has judged (tag ``hybridops.gate_promote``), oldest decision first."""
    client = registry_client(settings)
    name = settings.mlflow.model_name
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    judged = [mv for mv in versions if (mv.tags or {}).get(GATE_PROMOTE_TAG) in ("true", "false")]
    judged.sort(key=lambda mv: (float((mv.tags or {}).get(GATE_AT_TAG) or 0), int(mv.version)))
    return [_info(client, mv, with_metrics=False) for mv in judged]


# --- helpers -----------------------------------------------------------------------------------------


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


def _versions_with_fingerprint(client: MlflowClient, name: str, fingerprint: str) -> list[str]:
    """Versions of ``name`` registered from the training ``fingerprint``, lowest first."""
    found = client.search_model_versions(f"name = '{name}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'")
    return [str(v) for v in sorted(int(mv.version) for mv in found)]
