"""Install, upgrade, inspect and roll back the chart on a cluster with the ``kubernetes`` client, as Helm does.

There is no helm binary and ``helm_python`` has no install API, so a deploy renders the chart offline
(:mod:`hybridops.deploy.chart`) and server-side applies every object (field manager ``helm``, with Helm's
ownership label and annotations). Every deploy and rollback is a Helm revision: a record in Helm's own
storage format (:mod:`hybridops.deploy.releases`, read and written by :mod:`hybridops.deploy.release_store`),
so ``helm list``, ``helm history``, ``helm rollback``, ``helm uninstall`` and a later ``helm upgrade`` see
and continue releases made here, and ``hybridops deploy`` upgrades releases that ``helm install`` made.
Statuses follow Helm's actions (``pending-*``, ``deployed``, ``superseded``, ``failed``); objects the
previous deployed revision had and the new one has not are deleted (pruned; :mod:`hybridops.deploy.apply`).
Records hybridops wrote before (``hybridops-release-<release>-v<N>``) are read, and rewritten as Helm's on
the next deploy or rollback.

An offline render cannot ``lookup`` the cluster, so generated Secrets (``helm.sh/resource-policy: keep``)
would get new random passwords on every deploy: a deploy keeps the data of those that already exist, and
keeps the live value of pod-template ``checksum/*`` annotations that hash such a Secret (they match no
rendered template), so upgrades neither change passwords nor roll pods for nothing.

Helm hooks (objects annotated ``helm.sh/hook``) are kept out of the release's manifest and run after the
release's objects are ready, as Helm runs them (:mod:`hybridops.deploy.hooks`; the chart's PostgreSQL role
Job on every upgrade and rollback). Each record keeps its revision's hooks (Helm's ``hooks`` field, with
each hook's last run; the field ``helm get hooks`` prints), and a rollback takes the target revision's hooks
from its record, runs its ``post-rollback`` ones and records them in the new revision, as ``helm rollback``
does; a record without hooks (written by an older hybridops) rolls back without any.

This module holds the two actions; connecting (:mod:`hybridops.deploy.connection`) and waiting and status
(:mod:`hybridops.deploy.readiness`) live apart, and their names are re-exported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from hybridops.deploy import chart, hooks, releases
from hybridops.deploy.apply import _check_ownership, _ownership, _prune, _reconcile
from hybridops.deploy.connection import ClusterUnavailable, _ensure_namespace, connect
from hybridops.deploy.kube import DeployError, _apply, _path
from hybridops.deploy.readiness import PodStatus, StatusReport, WorkloadStatus, status, wait_ready
from hybridops.deploy.release_store import (
    Revision,
    _create_record,
    _migrate,
    _records,
    _update_record,
    history,
    revisions,
)

# What the CLI, the tables and the tests import from here (the machinery lives in the modules above).
__all__ = [
    "ClusterUnavailable",
    "DeployError",
    "DeployReport",
    "PodStatus",
    "Revision",
    "StatusReport",
    "WorkloadStatus",
    "_path",
    "connect",
    "deploy",
    "history",
    "revisions",
    "rollback",
    "status",
    "wait_ready",
]


@dataclass
class DeployReport:
    release: str
    namespace: str
    revision: int
    applied: int
    pruned: list[str]
    workloads: list[WorkloadStatus]
    hooks: list[str] = field(default_factory=list)  # the hooks run after the release was ready

    @property
    def ready(self) -> bool:
        return all(w.ready for w in self.workloads)


def _current(history: list[releases.Release]) -> releases.Release | None:
    """The release an upgrade starts from, as Helm picks it: the deployed one, else a failed/superseded last."""
    if not history or history[-1].status == releases.UNINSTALLED:
        return None
    deployed = [r for r in history if r.status == releases.DEPLOYED]
    if deployed:
        return deployed[-1]
    return history[-1] if history[-1].status in (releases.FAILED, releases.SUPERSEDED) else None


def _release(
    api: client.ApiClient,
    docs: list[releases.Document],
    new: releases.Release,
    current: releases.Release | None,
    action: str,
    wait_seconds: float,
    poll_seconds: float,
    release_hooks: Sequence[hooks.Hook] = (),
) -> DeployReport:
    """Record ``new`` as pending, apply it, prune what ``current`` had and ``new`` has not, wait, run the
    action's post hooks (:mod:`hybridops.deploy.hooks`), settle.

    The statuses follow Helm's actions: on success every deployed revision becomes ``superseded`` and
    ``new`` ``deployed``; on failure ``new`` is ``failed`` (a failed rollback also supersedes the
    revision it started from).
    """
    namespace, release = new.namespace, new.name
    _check_ownership(api, docs, current, release, namespace)

    def keep_hooks() -> None:  # the record holds the hooks with their last run, as Helm's does
        new.hooks = [hooks.to_record(h) for h in release_hooks]

    def record_hooks() -> None:  # a hook started: its record says Running, as Helm's execHook records it
        keep_hooks()
        _update_record(api, namespace, new)

    keep_hooks()
    _create_record(api, namespace, new)
    objects = [d.obj for d in docs]
    failure = ""
    pruned: list[str] = []
    workloads: list[WorkloadStatus] = []
    try:
        for obj in objects:
            _apply(api, _ownership(obj, release, namespace), namespace)
        previous = [d.obj for d in current.documents()] if current else []
        pruned = _prune(api, previous, objects, namespace)
    except DeployError as exc:
        failure = str(exc)
    if not failure:
        workloads = wait_ready(api, objects, namespace, wait_seconds, poll_seconds)
        stuck = [w.name for w in workloads if not w.ready]
        if stuck:
            failure = f"not ready after {wait_seconds:g}s: {', '.join(stuck)}"
    ran: list[str] = []
    hook_failed = False
    if not failure:
        try:
            ran = hooks.run(
                api,
                release_hooks,
                action,
                namespace,
                wait_seconds,
                poll_seconds,
                record=record_hooks,
            )
        except DeployError as exc:
            failure, hook_failed = str(exc), True
    keep_hooks()
    if failure:
        verb = {"install": "Release", "upgrade": "Upgrade", "rollback": "Rollback"}[action]
        new.status, new.description = releases.FAILED, f'{verb} "{release}" failed: {failure}'
        if action == "rollback" and current is not None and current.status != releases.SUPERSEDED:
            current.status = releases.SUPERSEDED
            _update_record(api, namespace, current)
        _update_record(api, namespace, new)
        if not workloads or hook_failed:  # ready workloads would not say that the release failed
            raise DeployError(f"{new.description} (revision {new.version} recorded as failed)")
    else:
        for old in _records(api, namespace, release):
            if old.version != new.version and old.status == releases.DEPLOYED:
                old.status = releases.SUPERSEDED
                _update_record(api, namespace, old)
        new.status = releases.DEPLOYED
        new.description = {"install": "Install complete", "upgrade": "Upgrade complete"}.get(
            action, new.description
        )
        _update_record(api, namespace, new)
    return DeployReport(release, namespace, new.version, len(objects), pruned, workloads, ran)


def _guard(history: list[releases.Release], release: str) -> None:
    if history and history[-1].status in releases.PENDING:
        last = history[-1]
        raise DeployError(
            f"another operation (install/upgrade/rollback) is in progress on release {release}: revision "
            f"{last.version} is {last.status}; wait for it, or if it died, roll back (hybridops rollback)"
        )


def deploy(
    api: client.ApiClient,
    profile: str,
    values_files: Sequence[Path] = (),
    namespace: str = chart.DEFAULT_NAMESPACE,
    release: str = chart.DEFAULT_RELEASE,
    wait_seconds: float = 300,
    poll_seconds: float = 2.0,
) -> DeployReport:
    """``helm upgrade --install``: render offline, record a Helm revision, apply, prune, wait for rollouts."""
    rendered = chart.render(profile, values_files, namespace, release)
    values = chart.user_values(profile, values_files)
    _ensure_namespace(api, namespace)
    history = _migrate(api, namespace, release)
    _guard(history, release)
    current = _current(history)
    template_hashes = {hashlib.sha256(text.encode()).hexdigest() for text in rendered.values()}
    # Hooks are kept out of the release's manifest, as Helm keeps them: never applied with it nor pruned.
    docs, release_hooks = hooks.split(releases.documents(rendered))
    _reconcile(api, [d.obj for d in docs], namespace, template_hashes)
    action = "upgrade" if current is not None else "install"
    stamp = releases.now()
    new = releases.Release(
        name=release,
        namespace=namespace,
        version=history[-1].version + 1 if history else 1,
        status=f"pending-{action}",
        description=f"Preparing {action}",
        manifest=releases.join_manifest(docs),
        config=values,
        chart=releases.chart_object(chart.CHART_DIR),
        first_deployed=current.first_deployed if current else stamp,
        last_deployed=stamp,
        labels={**(history[-1].labels if history else {}), releases.PROFILE_LABEL: profile},
    )
    return _release(api, docs, new, current, action, wait_seconds, poll_seconds, release_hooks)


def rollback(
    api: client.ApiClient,
    namespace: str = chart.DEFAULT_NAMESPACE,
    release: str = chart.DEFAULT_RELEASE,
    to_revision: int | None = None,
    wait_seconds: float = 300,
    poll_seconds: float = 2.0,
) -> DeployReport:
    """``helm rollback``: re-apply an earlier revision's manifest (default: the previous one) as a new one."""
    history = _migrate(api, namespace, release)
    if not history:
        raise DeployError(
            f"release {release} has no revisions in namespace {namespace}: nothing to roll back"
        )
    _guard(history, release)
    last = history[-1]
    if to_revision is None:
        if last.version < 2:
            raise DeployError(f"release {release} has only revision {last.version}: nothing to roll back to")
        to_revision = last.version - 1
    target = next((r for r in history if r.version == to_revision), None)
    if target is None:
        raise DeployError(
            f"release {release} has no revision {to_revision} in namespace {namespace} "
            f"(revisions: {', '.join(str(r.version) for r in history)})"
        )
    docs = target.documents()
    # The target's hooks, as Helm's rollback takes them: its post-rollback hooks run, all are recorded anew.
    # A record without hooks (an older hybridops wrote it) rolls back without any.
    release_hooks = hooks.of_release(target)
    _reconcile(api, [d.obj for d in docs], namespace, None)
    new = releases.Release(
        name=release,
        namespace=namespace,
        version=last.version + 1,
        status="pending-rollback",
        description=f"Rollback to {to_revision}",
        manifest=releases.join_manifest(docs),
        config=target.config,
        chart=target.chart,
        first_deployed=last.first_deployed,
        last_deployed=releases.now(),
        notes=target.notes,
        labels=dict(target.labels),
        apply_method="ssa",
    )
    return _release(api, docs, new, last, "rollback", wait_seconds, poll_seconds, release_hooks)
