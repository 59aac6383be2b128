"""Helm hooks, run by ``hybridops deploy`` and ``hybridops rollback`` as Helm runs them.

An object annotated ``helm.sh/hook`` is not part of the release's manifest (Helm keeps hooks apart, so they
are never applied with the release nor pruned): it is created when its event comes (``post-install``,
``post-upgrade``, ``post-rollback``, after the release's objects are applied and ready), in
``helm.sh/hook-weight`` order then by kind and name. A Job hook is waited for until it completes; a failed
Job fails the release. ``helm.sh/hook-delete-policy`` (default ``before-hook-creation``, as Helm's) says when
the hook object is deleted: ``before-hook-creation`` (the previous run's, before this one is created),
``hook-succeeded``, ``hook-failed``. Only the post-action events are supported: the chart has no other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hybridops.deploy import releases
from hybridops.deploy.kube import DeployError, _api_message, _call, _describe, _get, _path

HOOK_ANNOTATION = "helm.sh/hook"
WEIGHT_ANNOTATION = "helm.sh/hook-weight"
DELETE_ANNOTATION = "helm.sh/hook-delete-policy"
SUPPORTED_EVENTS = {"post-install", "post-upgrade", "post-rollback"}
EVENT_OF_ACTION = {"install": "post-install", "upgrade": "post-upgrade", "rollback": "post-rollback"}


@dataclass(frozen=True)
class Hook:
    obj: dict[str, Any]
    events: tuple[str, ...]
    weight: int
    delete_policies: tuple[str, ...]

    @property
    def name(self) -> str:
        return _describe(self.obj)


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
        found.append(Hook(doc.obj, events, int(weight), policies))
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
) -> list[str]:
    """Run the hooks of ``action``'s post event (see the module docstring); the hooks run, in order.

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
        try:
            _call(api, "POST", _path(obj["apiVersion"], obj["kind"], ns), body=obj)
        except ApiException as exc:
            raise DeployError(
                f"{event} hook {hook.name} could not be created: {exc.status} {_api_message(exc)}"
            ) from None
        outcome = "succeeded"
        if obj["kind"] == "Job":
            path = _path(obj["apiVersion"], "Job", ns, meta["name"])
            deadline = time.monotonic() + timeout
            while (outcome_or_none := _job_outcome(_get(api, path) or {})) is None:
                if time.monotonic() >= deadline:
                    raise DeployError(
                        f"{event} hook {hook.name} did not complete within {timeout:g}s "
                        f"(kubectl -n {ns} logs job/{meta['name']})"
                    )
                sleep(poll_seconds)
            outcome = outcome_or_none
        if outcome != "succeeded":
            if "hook-failed" in hook.delete_policies:
                _delete(api, obj, namespace, timeout, sleep)
            raise DeployError(f"{event} hook {hook.name} {outcome} (kubectl -n {ns} logs job/{meta['name']})")
        if "hook-succeeded" in hook.delete_policies:
            _delete(api, obj, namespace, timeout, sleep)
        ran.append(hook.name)
    return ran
