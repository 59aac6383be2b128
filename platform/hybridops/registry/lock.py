"""A mutual-exclusion lock held in the MLflow registry itself, around the moves of a model's aliases.

MLflow sets an alias unconditionally (no compare-and-set), so two processes promoting at once both read
the same champion, both move the alias and both record "from the old champion": the history loses a move.
Every alias move of :mod:`hybridops.registry.models` therefore runs under this lock. It needs no other
service than the registry: the lock is a registered model named ``<model>.hybridops-lock``, and creating a
registered model is atomic in every MLflow store (a unique name; the second creator gets
``RESOURCE_ALREADY_EXISTS``). The holder deletes it when done. A lock older than ``stale_seconds`` (its
holder died between create and delete) is taken over: the takeover deletes it only if it still names the
same holder when read. That check and the delete are two requests, so two takeovers of one stale lock can
race (one may delete the lock the other just took), and MLflow's HTTP client retries a delete whose answer
was lost; both are rare (a dead holder, a lost answer) and described in docs/reliability.md, scenario 14.
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from hybridops.errors import HybridopsError

LOCK_SUFFIX = ".hybridops-lock"
HOLDER_TAG = "hybridops.lock_holder"
# A create that lost the race: MLflow answers "already exists", or, when the holder released the lock
# between MLflow's failed insert and the read it does to word that answer, "does not exist".
_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST")


def lock_name(model_name: str) -> str:
    return f"{model_name}{LOCK_SUFFIX}"


@contextmanager
def alias_lock(
    client: MlflowClient, model_name: str, timeout_seconds: float = 600.0, stale_seconds: float = 300.0
) -> Iterator[None]:
    """Hold the alias lock of ``model_name`` for the block.

    Raises:
        HybridopsError: the lock stayed held by a live holder for ``timeout_seconds``.
    """
    name = lock_name(model_name)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + timeout_seconds
    delay = 0.02
    while True:
        try:
            client.create_registered_model(
                name,
                tags={HOLDER_TAG: holder},
                description=f"Lock of the aliases of {model_name} held by {holder} (hybridops); "
                f"taken over after {stale_seconds:.0f} s.",
            )
            break
        except MlflowException as exc:
            if exc.error_code not in _EXISTS:
                raise
        _take_over_if_stale(client, name, stale_seconds)
        if time.monotonic() > deadline:
            raise HybridopsError(
                f"The registry lock {name!r} of model {model_name!r} stayed held for {timeout_seconds:.0f} s "
                "by another process moving its aliases; try again. A lock whose holder died is taken over "
                f"after {stale_seconds:.0f} s."
            )
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 1.5, 0.5)
    try:
        yield
    finally:
        _release(client, name, holder)


def _take_over_if_stale(client: MlflowClient, name: str, stale_seconds: float) -> None:
    try:
        lock = client.get_registered_model(name)
    except MlflowException:
        return  # released meanwhile
    age = time.time() - (lock.creation_timestamp or 0) / 1000
    if age > stale_seconds:
        _release(client, name, (lock.tags or {}).get(HOLDER_TAG))


def _release(client: MlflowClient, name: str, holder: str | None) -> None:
    try:
        if (client.get_registered_model(name).tags or {}).get(HOLDER_TAG) == holder:
            client.delete_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
