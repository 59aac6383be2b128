"""A mutual-exclusion lock held in the MLflow registry itself, around the moves of a model's aliases.

MLflow sets an alias unconditionally (no compare-and-set), so two processes promoting at once both read
the same champion, both move the alias and both record "from the old champion": the history loses a move.
Every alias move of :mod:`hybridops.registry.models` therefore runs under this lock. It needs no other
service than the registry.

It is a ticket lock. The registered model ``<model>.hybridops-lock`` is created once (create-if-absent) and
never deleted; each acquisition creates a *version* of it, tagged with the acquirer's unique holder id,
and the acquirer holds the lock once the lowest live version carries its tag. Release deletes the holder's
own versions by number. It is race-free under the requests MLflow's HTTP client resends blindly after a 5xx
or a lost answer (every method, POST and DELETE included) because no request names anything another holder
owns:

* MLflow numbers versions itself (``max(version) + 1`` under the primary key; a clash retries) and keeps a
  deleted version's row (stage ``DELETED_INTERNAL``), so a number is never given twice, and version n+1 is
  only inserted once version n is committed: a lower ticket never appears after a higher one was seen.
* A resent delete names a number that only ever meant the sender's own ticket: it deletes nothing else.
* A resent create leaves the acquirer two tickets with its tag; every live ticket with its tag is its own
  (it holds when the lowest is one of them; release deletes them all), so that costs no deadlock.
* A dead holder's ticket is deleted by number by the waiters, so two takeovers of one ticket delete the same
  version and nothing else; who holds next is decided by the lowest live number alone, which one process has.
  A ticket is stale when a waiter has seen it at the head for ``stale_seconds`` (its own clock, so a long
  queue ahead of a live ticket does not age it), or when it was created more than ``timeout_seconds +
  stale_seconds`` ago (no live acquirer waits or holds that long: all writers use the same timeouts).

A holder that keeps the lock past ``stale_seconds`` (a stopped process) is taken over like a dead one, as
with any lease; it is told at release. An old-style lock model (a registered model with a holder tag and no
versions, left by a release before this one) simply becomes the lock model. Docs: docs/reliability.md,
scenario 14.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from hybridops.errors import HybridopsError

LOCK_SUFFIX = ".hybridops-lock"
HOLDER_TAG = "hybridops.lock_holder"
# A ticket version points at nothing. MLflow requires a source and refuses a local path without a run and a
# relative path; an absolute path under a scheme of our own names no host and no file, and nothing reads it.
TICKET_SOURCE = "hybridops-lock:/ticket"
_GONE = "RESOURCE_DOES_NOT_EXIST"
_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")

log = logging.getLogger(__name__)


def lock_name(model_name: str) -> str:
    return f"{model_name}{LOCK_SUFFIX}"


@dataclass(frozen=True, order=True)
class Ticket:
    version: int
    holder: str | None
    created_ms: int


@contextmanager
def alias_lock(
    client: MlflowClient, model_name: str, timeout_seconds: float = 600.0, stale_seconds: float = 300.0
) -> Iterator[None]:
    """Hold the alias lock of ``model_name`` for the block.

    Raises:
        HybridopsError: the lock stayed held by a live holder for ``timeout_seconds``.
    """
    name = lock_name(model_name)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    deadline = time.monotonic() + timeout_seconds
    _ensure_lock_model(client, name, model_name)
    held = False
    try:
        _wait_for_turn(client, name, model_name, holder, deadline, timeout_seconds, stale_seconds)
        held = True
        yield
    finally:
        if not release(client, name, holder) and held:
            log.warning(
                "The registry lock %r of %r was taken over while %s held it (held past %.0f s); another "
                "process may have moved aliases meanwhile.",
                name,
                model_name,
                holder,
                stale_seconds,
            )


def _ensure_lock_model(client: MlflowClient, name: str, model_name: str) -> None:
    try:
        client.create_registered_model(
            name,
            description=f"Alias lock of the registered model {model_name!r} (hybridops). Each version is "
            "the ticket of one process waiting for or holding the lock, the lowest holds it, and is deleted "
            "when released: normally this model has no version. Do not delete it while hybridops writes.",
        )
    except MlflowException as exc:
        if exc.error_code not in _EXISTS:
            raise


def _take_ticket(client: MlflowClient, name: str, holder: str) -> None:
    client.create_model_version(
        name,
        TICKET_SOURCE,
        tags={HOLDER_TAG: holder},
        description=f"Lock ticket of {holder}",
        await_creation_for=0,  # the SQL store creates versions READY; no status poll
    )


def tickets(client: MlflowClient, name: str) -> list[Ticket]:
    """The live tickets of the lock model ``name``, lowest version first."""
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(
        Ticket(int(mv.version), (mv.tags or {}).get(HOLDER_TAG), int(mv.creation_timestamp or 0))
        for mv in found
    )


def _wait_for_turn(
    client: MlflowClient,
    name: str,
    model_name: str,
    holder: str,
    deadline: float,
    timeout_seconds: float,
    stale_seconds: float,
) -> None:
    _take_ticket(client, name, holder)
    head_seen: dict[int, float] = {}  # head version -> when this waiter first saw it at the head
    delay = 0.02
    while True:
        live = tickets(client, name)
        if not any(t.holder == holder for t in live):
            # Ours was deleted as stale (this process stood still at the head) or by hand: queue again.
            _take_ticket(client, name, holder)
            continue
        head = live[0]
        if head.holder == holder:
            return
        now = time.monotonic()
        first_seen = head_seen.setdefault(head.version, now)
        age = time.time() - head.created_ms / 1000
        if now - first_seen >= stale_seconds or age > timeout_seconds + stale_seconds:
            log.warning(
                "Taking over the registry lock %r: ticket %d of %s is stale.", name, head.version, head.holder
            )
            _delete_version(client, name, head.version)
            continue
        if now > deadline:
            raise HybridopsError(
                f"The registry lock {name!r} of model {model_name!r} stayed held for {timeout_seconds:.0f} s "
                f"by another process moving its aliases ({head.holder}); try again. A lock whose holder died "
                f"is taken over after {stale_seconds:.0f} s."
            )
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 1.5, 0.5)


def release(client: MlflowClient, name: str, holder: str) -> bool:
    """Delete every live ticket of ``holder`` by its number; False when it had none left (taken over)."""
    mine = [t for t in tickets(client, name) if t.holder == holder]
    for ticket in mine:
        _delete_version(client, name, ticket.version)
    return bool(mine)


def _delete_version(client: MlflowClient, name: str, version: int) -> None:
    try:
        client.delete_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code != _GONE:  # deleted already: by our own resent request or another waiter's
            raise
