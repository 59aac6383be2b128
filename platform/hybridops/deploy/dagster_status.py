"""The Dagster part of ``hybridops status``: the last runs and the daemon heartbeats of an instance.

Read through the Dagster instance API (``DagsterInstance``), never through the code location: in a
cluster the instance is its Postgres database (``--dagster-postgres-url``, typically through a
``kubectl port-forward``), or a folder holding a ``dagster.yaml`` (``--dagster-home``); by default it is the
local instance under ``HYBRIDOPS_HOME`` that ``hybridops run`` writes. Nothing here creates an instance:
a missing or unreachable one is reported as :class:`InstanceUnavailable` (one line).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hybridops.errors import HybridopsError

if TYPE_CHECKING:
    from dagster import DagsterInstance

DEFAULT_RUNS = 10
# Seconds a Postgres connection attempt may take: an unreachable instance is reported, not waited on.
CONNECT_TIMEOUT = 5


class InstanceUnavailable(HybridopsError):
    """No Dagster instance where we were told to look, or its storage does not answer."""


@dataclass
class RunSummary:
    run_id: str
    job: str
    status: str
    started_at: str | None
    ended_at: str | None
    duration_seconds: float | None


@dataclass
class DaemonSummary:
    daemon_type: str
    required: bool
    healthy: bool
    heartbeat_age_seconds: float | None
    errors: int


@dataclass
class DagsterReport:
    instance: str
    runs: list[RunSummary]
    daemons: list[DaemonSummary]

    @property
    def healthy(self) -> bool:
        return all(d.healthy for d in self.daemons if d.required)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _dagster_url(url: str) -> str:
    """``url`` with the psycopg2 driver named: dagster-postgres is written for psycopg2, and SQLAlchemy
    picks psycopg 3 (also installed, for Feast) for a bare ``postgresql://``, which breaks Dagster's
    event log (``NOTIFY`` with a bound parameter)."""
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        parts = parts._replace(scheme="postgresql+psycopg2")
    return urlunsplit(parts)


def _with_connect_timeout(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("connect_timeout", str(CONNECT_TIMEOUT))
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextmanager
def open_instance(dagster_home: Path | None = None, postgres_url: str | None = None) -> Iterator[Any]:
    """A ``DagsterInstance`` on ``postgres_url``, else on the ``dagster.yaml`` in ``dagster_home``."""
    from dagster._core.instance.ref import InstanceRef

    if postgres_url:
        if urlsplit(postgres_url).scheme not in ("postgresql", "postgres", "postgresql+psycopg2"):
            raise InstanceUnavailable(
                f"--dagster-postgres-url must be a postgresql:// URL, not {redact(postgres_url)!r}"
            )
        where = redact(postgres_url)
        _probe(postgres_url, where)
        # An empty folder for the ref's local defaults; the storage is Postgres, so nothing is written.
        with tempfile.TemporaryDirectory(prefix="hybridops-dagster-") as base:
            storage = {"postgres": {"postgres_url": _dagster_url(_with_connect_timeout(postgres_url))}}
            overrides = {"storage": storage, "telemetry": {"enabled": False}}
            instance = _create(lambda: InstanceRef.from_dir(base, overrides=overrides), where)
            with instance:
                yield _Located(instance, where)
        return
    if dagster_home is None:
        raise InstanceUnavailable("no Dagster instance given: pass --dagster-home or --dagster-postgres-url")
    home = dagster_home.expanduser().resolve()
    if not (home / "dagster.yaml").is_file():
        raise InstanceUnavailable(
            f"no Dagster instance at {home} (no dagster.yaml): nothing has run there yet "
            "(`hybridops run`), or pass --dagster-postgres-url / --dagster-home"
        )
    instance = _create(lambda: InstanceRef.from_dir(str(home)), str(home))
    with instance:
        yield _Located(instance, str(home))


@dataclass
class _Located:
    instance: DagsterInstance
    where: str


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _probe(url: str, where: str) -> None:
    """One plain connection first: dagster-postgres retries each of its storages with backoff, which
    takes seconds to say what one refused connection says at once."""
    import psycopg2

    try:
        psycopg2.connect(
            _with_connect_timeout(url).replace("postgresql+psycopg2://", "postgresql://", 1)
        ).close()
    except psycopg2.Error as exc:
        raise InstanceUnavailable(f"Dagster instance {where} unreachable: {_one_line(exc)}") from None


def _create(make_ref: Any, where: str) -> DagsterInstance:
    from dagster import DagsterInstance

    try:
        return DagsterInstance.from_ref(make_ref())
    except Exception as exc:  # storage drivers raise their own types (psycopg2, sqlalchemy, sqlite3)
        raise InstanceUnavailable(f"Dagster instance {where} unreachable: {_one_line(exc)}") from None


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _runs(instance: DagsterInstance, limit: int, now: float) -> list[RunSummary]:
    out = []
    for record in instance.get_run_records(limit=limit):  # newest first
        run = record.dagster_run
        start, end = record.start_time, record.end_time
        if start is not None and end is not None:
            duration: float | None = max(end - start, 0.0)
        elif start is not None and not run.is_finished:
            duration = max(now - start, 0.0)  # still running: time so far
        else:
            duration = None
        out.append(
            RunSummary(
                run_id=run.run_id,
                job=run.job_name,
                status=run.status.value,
                started_at=_iso(start),
                ended_at=_iso(end),
                duration_seconds=None if duration is None else round(duration, 3),
            )
        )
    return out


def _daemons(instance: DagsterInstance, now: float) -> list[DaemonSummary]:
    """Every daemon this instance requires, plus any other that has sent a heartbeat.

    Healthy is Dagster's own verdict (``DagsterInstance.get_daemon_statuses``: a heartbeat within the
    heartbeat interval plus tolerance); daemons the instance does not require but that did send heartbeats
    (an instance read through a bare Postgres URL does not know the cluster's run monitoring and retry
    settings) are judged by the same rule.
    """
    from dagster._daemon.controller import (
        DEFAULT_DAEMON_HEARTBEAT_TOLERANCE_SECONDS,
        DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    )

    heartbeats = instance.get_daemon_heartbeats()
    required = set(instance.get_required_daemon_types())
    statuses = instance.get_daemon_statuses(sorted(required)) if required else {}
    out = []
    for daemon_type in sorted(required | set(heartbeats)):
        beat = heartbeats.get(daemon_type)
        age = None if beat is None else max(now - beat.timestamp, 0.0)
        if daemon_type in statuses:
            healthy = bool(statuses[daemon_type].healthy)
        else:
            tolerance = DEFAULT_HEARTBEAT_INTERVAL_SECONDS + DEFAULT_DAEMON_HEARTBEAT_TOLERANCE_SECONDS
            healthy = age is not None and age <= tolerance
        out.append(
            DaemonSummary(
                daemon_type=daemon_type,
                required=daemon_type in required,
                healthy=healthy,
                heartbeat_age_seconds=None if age is None else round(age, 1),
                errors=len((beat.errors if beat else None) or []),
            )
        )
    return out


def read(
    dagster_home: Path | None = None,
    postgres_url: str | None = None,
    limit: int = DEFAULT_RUNS,
    now: float | None = None,
) -> DagsterReport:
    """The last ``limit`` runs and the daemon heartbeats of an instance; one-line errors if unavailable."""
    with open_instance(dagster_home, postgres_url) as located:
        current = time.time() if now is None else now
        try:
            runs = _runs(located.instance, limit, current)
            daemons = _daemons(located.instance, current)
        except Exception as exc:  # the storage went away, or its schema is not Dagster's
            raise InstanceUnavailable(
                f"Dagster instance {located.where} unreachable: {_one_line(exc)}"
            ) from None
        return DagsterReport(located.where, runs, daemons)
