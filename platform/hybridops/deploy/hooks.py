"""Helm hooks, run by ``hybridops deploy`` and ``hybridops rollback`` as Helm runs them.

An object annotated ``helm.sh/hook`` is not part of the release's manifest (Helm keeps hooks apart, so they
are never applied with the release nor pruned): it is created when its event comes (``post-install``,
``post-upgrade``, ``post-rollback``, after the release's objects are applied and ready), in
``helm.sh/hook-weight`` order then by kind and name. A Job hook is waited for until it completes; a failed
Job fails the release. ``helm.sh/hook-delete-policy`` (default ``before-hook-creation``, as Helm's) says when
the hook object is deleted: ``before-hook-creation`` (the previous run's, before this one is created),
``hook-succeeded``, ``hook-failed``. Only the post-action events are supported: the chart has no other.

Each revision's record keeps its hooks as Helm keeps them (``hooks`` of the release, ``pkg/release/v1.Hook``:
``name``, ``kind``, ``path``, ``manifest``, ``events``, ``last_run`` {``started_at``, ``completed_at``,
``phase``}, ``weight``, ``delete_policies``; :func:`to_record`, :func:`from_record`): the field ``helm get
hooks`` prints, and where a rollback finds the target revision's hooks, as ``helm rollback`` does. A run sets
``last_run`` as Helm's ``execHook`` does: ``Running`` with its start (recorded before the object is
created), then ``Succeeded`` or ``Failed`` with its end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hybridops.deploy import releases
from hybridops.deploy.kube import DeployError, _api_message, _call, _describe, _get, _path

HOOK_ANNOTATION = "helm.sh/hook"
WEIGHT_ANNOTATION = "helm.sh/hook-weight"
DELETE_ANNOTATION = "helm.sh/hook-delete-policy"
SUPPORTED_EVENTS = {"post-install", "post-upgrade", "post-rollback"}
EVENT_OF_ACTION = {"install": "post-install", "upgrade": "post-upgrade", "rollback": "post-rollback"}
# Events a rollback fires (Helm's Rollback.performRollback): one hybridops cannot run must not pass silently.
ROLLBACK_EVENTS = ("pre-rollback", "post-rollback")
# Helm's HookPhase values (pkg/release/v1/hook.go)
RUNNING, SUCCEEDED, FAILED = "Running", "Succeeded", "Failed"


@dataclass
class Execution:
    """Helm's ``HookExecution``: the last run of a hook (empty times: never run)."""

    started_at: str = ""
    completed_at: str = ""
    phase: str = ""


@dataclass
class Hook:
    obj: dict[str, Any]
    events: tuple[str, ...]
    weight: int
    delete_policies: tuple[str, ...]
    path: str = ""  # the template that rendered it (Helm's Hook.Path, the manifest's `# Source:`)
    last_run: Execution = field(default_factory=Execution)

    @property
    def name(self) -> str:
        return _describe(self.obj)


def to_record(hook: Hook) -> dict[str, Any]:
    """The hook as Helm's release JSON holds it (``omitempty`` fields left out when empty; ``last_run`` and
    its ``phase`` always there, as Go writes them; zero times left out, as :mod:`releases` does)."""
    last_run: dict[str, Any] = {
        key: value
        for key, value in (
            ("started_at", hook.last_run.started_at),
            ("completed_at", hook.last_run.completed_at),
        )
        if value
    }
    last_run["phase"] = hook.last_run.phase
    body: dict[str, Any] = {
        "name": hook.obj["metadata"]["name"],
        "kind": hook.obj["kind"],
        "path": hook.path,
        "manifest": yaml.safe_dump(hook.obj, sort_keys=False, width=10_000),
        "events": list(hook.events),
        "last_run": last_run,
        "weight": hook.weight,
        "delete_policies": list(hook.delete_policies),
    }
    return {k: v for k, v in body.items() if k == "last_run" or v not in ("", [], 0)}


def from_record(record: dict[str, Any], where: str) -> Hook:
    """A hook of a release record (:func:`to_record`'s shape, or Helm's); ``where`` names the record.

    Raises:
        DeployError: the hook's manifest is not one Kubernetes object, or a field has the wrong type.
    """
    label = f"hook {record.get('name') or '?'} of {where}"
    try:
        obj = yaml.safe_load(str(record.get("manifest") or ""))
    except yaml.YAMLError as exc:
        raise DeployError(f"{label}: its manifest is not YAML ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict) or not obj.get("kind") or not (obj.get("metadata") or {}).get("name"):
        raise DeployError(f"{label}: its manifest is not a Kubernetes object with a kind and a name")
    events, policies, run = (
        record.get("events") or [],
        record.get("delete_policies") or [],
        record.get("last_run"),
    )
    weight = record.get("weight") or 0
    if not isinstance(events, list) or not isinstance(policies, list) or not isinstance(weight, int):
        raise DeployError(f"{label}: events, delete_policies or weight have the wrong type")
    run = run if isinstance(run, dict) else {}
    return Hook(
        obj,
        tuple(str(e) for e in events),
        weight,
        # Helm's execHook gives a hook without policies its default, before-hook-creation
        tuple(str(p) for p in policies) or ("before-hook-creation",),
        path=str(record.get("path") or ""),
        last_run=Execution(
            str(run.get("started_at") or ""), str(run.get("completed_at") or ""), str(run.get("phase") or "")
        ),
    )


def of_release(rel: releases.Release) -> list[Hook]:
    """The hooks a rollback to ``rel`` runs and records (none in a record made before hooks were kept).

    Raises:
        DeployError: a hook is unreadable, or is for a rollback event hybridops does not run.
    """
    where = f"release {rel.name} revision {rel.version}"
    found = [from_record(record, where) for record in rel.hooks]
    for hook in found:
        unsupported = sorted(set(hook.events) & (set(ROLLBACK_EVENTS) - SUPPORTED_EVENTS))
        if unsupported:
            raise DeployError(
                f"{hook.name} ({hook.path or where}) is a Helm hook for {', '.join(unsupported)}: hybridops "
                "rollback runs only post-rollback hooks; use helm rollback for this release"
            )
    return found


def split(docs: Sequence[releases.Document]) -> tuple[list[releases.Document], list[Hook]]:
    """The release's own documents, and its hooks.

    Raises:
        DeployError: a hook for an event hybridops does not run (it would silently never run), or a
            weight that is not an integer.
    """
    kept: list[releases.Document] = []
    found: list[Hook] = []
    for doc in docs:
        notes = doc.obj.get("metadata", {}).get("annotations") or {}
        if HOOK_ANNOTATION not in notes:
            kept.append(doc)
            continue
        events = tuple(e.strip() for e in str(notes[HOOK_ANNOTATION]).split(",") if e.strip())
        unsupported = sorted(set(events) - SUPPORTED_EVENTS)
        if unsupported:
            raise DeployError(
                f"{_describe(doc.obj)} ({doc.source}) is a Helm hook for {', '.join(unsupported)}: hybridops "
                f"deploy runs only {', '.join(sorted(SUPPORTED_EVENTS))} hooks; use helm for this chart"
            )
        policies = tuple(
            p.strip()
            for p in str(notes.get(DELETE_ANNOTATION, "before-hook-creation")).split(",")
            if p.strip()
        )
        weight = str(notes.get(WEIGHT_ANNOTATION, "0")).strip()
        if not weight.lstrip("+-").isdigit():
            raise DeployError(
                f"{_describe(doc.obj)} ({doc.source}): {WEIGHT_ANNOTATION} {weight!r} is not an integer"
            )
        found.append(Hook(doc.obj, events, int(weight), policies, path=doc.source))
    return kept, found


def _delete(
    api: client.ApiClient, obj: dict[str, Any], namespace: str, timeout: float, sleep: Callable[[float], None]
) -> None:
    """Delete ``obj`` (its pods too) and wait until it is gone: a Job's name is free only then."""
    path = _path(
        obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace") or namespace, obj["metadata"]["name"]
    )
    try:
        _call(api, "DELETE", path, query=[("propagationPolicy", "Background")])
    except ApiException as exc:
        if exc.status == 404:
            return
        raise DeployError(
            f"deleting hook {_describe(obj)} failed: {exc.status} {_api_message(exc)}"
        ) from None
    deadline = time.monotonic() + timeout
    while _get(api, path) is not None:
        if time.monotonic() >= deadline:
            raise DeployError(f"hook {_describe(obj)} was not deleted within {timeout:g}s")
        sleep(0.5)


def _job_outcome(live: dict[str, Any]) -> str | None:
    """``succeeded``, ``failed: <reason>`` or None while the Job runs."""
    status = live.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return "succeeded"
        if cond.get("type") == "Failed":
            return f"failed: {cond.get('reason', '')} {cond.get('message', '')}".strip()
    return None


def run(
    api: client.ApiClient,
    found: Sequence[Hook],
    action: str,
    namespace: str,
    timeout: float,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    record: Callable[[], None] = lambda: None,
) -> list[str]:
    """Run the hooks of ``action``'s post event (see the module docstring); the hooks run, in order.

    Each hook's ``last_run`` is set as it runs; ``record`` is called when a hook has started (``Running``),
    so the release's record says so while it runs (Helm's ``execHook``). The caller records the outcome.

    Raises:
        DeployError: a hook could not be created, failed, or did not finish within ``timeout`` seconds.
    """
    event = EVENT_OF_ACTION[action]
    due = sorted((h for h in found if event in h.events), key=lambda h: (h.weight, h.obj["kind"], h.name))
    ran = []
    for hook in due:
        obj = hook.obj
        meta = obj["metadata"]
        ns = meta.get("namespace") or namespace
        if "before-hook-creation" in hook.delete_policies:
            _delete(api, obj, namespace, timeout, sleep)
        hook.last_run = Execution(started_at=releases.now(), phase=RUNNING)
        record()
        try:
            _call(api, "POST", _path(obj["apiVersion"], obj["kind"], ns), body=obj)
        except ApiException as exc:
            hook.last_run.completed_at, hook.last_run.phase = releases.now(), FAILED
            raise DeployError(
                f"{event} hook {hook.name} could not be created: {exc.status} {_api_message(exc)}"
            ) from None
        outcome = "succeeded"
        if obj["kind"] == "Job":
            path = _path(obj["apiVersion"], "Job", ns, meta["name"])
            deadline = time.monotonic() + timeout
            while (outcome_or_none := _job_outcome(_get(api, path) or {})) is None:
                if time.monotonic() >= deadline:
                    hook.last_run.completed_at, hook.last_run.phase = releases.now(), FAILED
                    raise DeployError(
                        f"{event} hook {hook.name} did not complete within {timeout:g}s "
                        f"(kubectl -n {ns} logs job/{meta['name']})"
                    )
                sleep(poll_seconds)
            outcome = outcome_or_none
        hook.last_run.completed_at = releases.now()
        hook.last_run.phase = SUCCEEDED if outcome == "succeeded" else FAILED
        if outcome != "succeeded":
            if "hook-failed" in hook.delete_policies:
                _delete(api, obj, namespace, timeout, sleep)
            raise DeployError(f"{event} hook {hook.name} {outcome} (kubectl -n {ns} logs job/{meta['name']})")
        if "hook-succeeded" in hook.delete_policies:
            _delete(api, obj, namespace, timeout, sleep)
        ran.append(hook.name)
    return ran
