"""The alias history: every alias change, with its reason, in the warehouse and on the versions involved.

Each change is recorded twice: as a row of the DuckDB table ``model_alias_events`` in the warehouse, and as
a model-version tag ``hybridops.alias_event.<at>.<id>`` (a JSON object) on each version the change involves,
so the registry itself also tells the story. The tag key is unique per event (its UTC time to the
microsecond and a random id): several processes recording events on one version at once each write a key
of their own, where a key numbered by counting the existing tags was taken by two writers and one event
overwrote the other. Tags written with the older numbered keys (``hybridops.alias_event.<n>``) are still read.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from hybridops.registry.client import registry_client
from hybridops.settings import Settings
from hybridops.warehouse.db import append_rows, connect, exists, read_frame, table_exists

EVENTS_TABLE = "model_alias_events"
EVENT_TAG_PREFIX = "hybridops.alias_event."
DEFAULT_ACTOR = "hybridops"
EVENTS_LOCK_WAIT_SECONDS = 600.0

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
class AliasEvent:
    at: datetime
    model_name: str
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str
    actor: str
    run_id: str | None
    event_id: str = ""  # unique id of the event (the suffix of its tag key)


def event_tag_key(event: AliasEvent) -> str:
    """``hybridops.alias_event.<YYYYmmddTHHMMSSffffffZ>.<id>``: sorts by time, unique per event."""
    return f"{EVENT_TAG_PREFIX}{event.at.strftime('%Y%m%dT%H%M%S%fZ')}.{event.event_id}"


def new_event(
    settings: Settings,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    reason: str,
    *,
    actor: str = DEFAULT_ACTOR,
    run_id: str | None = None,
) -> AliasEvent:
    """An alias change stamped now (call it when the change is made; :func:`persist_events` records it)."""
    return AliasEvent(
        at=datetime.now(UTC).replace(tzinfo=None),
        model_name=settings.mlflow.model_name,
        alias=alias,
        from_version=None if from_version is None else str(from_version),
        to_version=None if to_version is None else str(to_version),
        reason=reason,
        actor=actor,
        run_id=run_id,
        event_id=uuid.uuid4().hex[:12],
    )


def persist_events(settings: Settings, events: list[AliasEvent], client: MlflowClient | None = None) -> None:
    """Record alias changes (already made) in the warehouse and as tags on the versions involved.

    Their order is their ``at``, stamped when each change was made: the alias moves run under the
    registry lock, the recording after it, so a slow warehouse never holds the lock.
    """
    if not events:
        return
    rows = pa.Table.from_pylist(
        [{column: getattr(event, column) for column in EVENT_COLUMNS} for event in events], _EVENTS_SCHEMA
    )
    # A DuckDB warehouse admits one writer at a time: processes moving aliases together queue for it.
    with connect(settings, lock_wait_seconds=EVENTS_LOCK_WAIT_SECONDS) as con:
        append_rows(con, EVENTS_TABLE, rows)
    client = client or registry_client(settings)
    for event in events:
        payload = json.dumps(
            {
                "at": event.at.isoformat(timespec="microseconds") + "Z",
                "alias": event.alias,
                "from_version": event.from_version,
                "to_version": event.to_version,
                "reason": event.reason[:20_000],
                "actor": event.actor,
                "run_id": event.run_id,
                "event_id": event.event_id,
            }
        )
        key = event_tag_key(event)
        for version in dict.fromkeys(v for v in (event.to_version, event.from_version) if v is not None):
            try:
                client.set_model_version_tag(event.model_name, version, key, payload)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                # the version was deleted: the warehouse row is the record


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
    event = new_event(settings, alias, from_version, to_version, reason, actor=actor, run_id=run_id)
    persist_events(settings, [event], client)
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


def tag_events(tags: dict[str, str]) -> list[dict[str, object]]:
    """The alias events among a version's tags, oldest first (by their time, then their key)."""
    events = []
    for key, value in tags.items():
        if not key.startswith(EVENT_TAG_PREFIX):
            continue
        try:
            payload = json.loads(value)
        except ValueError:
            continue  # not one of ours
        if isinstance(payload, dict):
            events.append((str(payload.get("at", "")), key, payload))
    return [payload for _, _, payload in sorted(events, key=lambda item: (item[0], item[1]))]


def version_events(settings: Settings, version: str) -> list[dict[str, object]]:
    """The alias events recorded as tags on one model version, in order."""
    from hybridops.registry.lookup import get_version

    client = registry_client(settings)
    return tag_events(get_version(client, settings.mlflow.model_name, str(version)).tags or {})
