"""What the Dagster instance recorded, read through the webserver's GraphQL API (as a user's tools would)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GraphQL = Callable[..., dict[str, Any]]

_RUNS = """
query Runs($cursor: String) {
  runsOrError(limit: 200, cursor: $cursor) {
    ... on Runs { results { runId jobName status creationTime startTime endTime tags { key value } } }
  }
}
"""
_EVENTS = """
query Events($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 1000) {
    ... on EventConnection { events { __typename ... on MessageEvent { message } } cursor hasMore }
  }
}
"""
_MATERIALIZATIONS = """
query Materializations($path: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition timestamp runId
        metadataEntries { label ... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue } }
      }
    }
  }
}
"""
_SENSORS = """
query { sensorsOrError(repositorySelector: {repositoryLocationName: "hybridops", repositoryName: "__repository__"}) {
  ... on Sensors { results { name sensorState { status } } } } }
"""

# What a writer waiting on another writer's lock says (DuckDB's file lock, the platform's own wait, SQLite).
LOCK_ERROR = re.compile(
    r"could not set lock|conflicting lock|database is locked|stayed locked|lock wait timeout|"
    r"could not obtain lock|lockerror",
    re.IGNORECASE,
)
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass(frozen=True)
class Run:
    run_id: str
    job: str
    status: str
    created: float
    started: float | None
    ended: float | None
    tags: dict[str, str]


def runs(graphql: GraphQL) -> list[Run]:
    """Every run of the instance, newest first."""
    out: list[Run] = []
    cursor = None
    while True:
        page = graphql(_RUNS, {"cursor": cursor})["runsOrError"]["results"]
        out.extend(
            Run(
                r["runId"],
                r["jobName"],
                r["status"],
                r["creationTime"],
                r["startTime"],
                r["endTime"],
                {t["key"]: t["value"] for t in r["tags"]},
            )
            for r in page
        )
        if len(page) < 200:
            return out
        cursor = page[-1]["runId"]


def max_overlap(all_runs: list[Run]) -> int:
    """The most runs that were executing at once, from their recorded start and end times."""
    edges = sorted(
        [(r.started, 1) for r in all_runs if r.started]
        + [(r.ended, -1) for r in all_runs if r.started and r.ended]
    )
    now = best = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def run_messages(graphql: GraphQL, run_id: str) -> list[str]:
    """Every message of a run's event log."""
    messages: list[str] = []
    cursor = None
    while True:
        page = graphql(_EVENTS, {"runId": run_id, "cursor": cursor})["logsForRun"]
        messages.extend(event.get("message") or "" for event in page["events"])
        if not page["hasMore"]:
            return messages
        cursor = page["cursor"]


def lock_errors(graphql: GraphQL, run_ids: list[str]) -> list[str]:
    """The messages of these runs' logs that report a writer blocked by another's lock."""
    return [m for run_id in run_ids for m in run_messages(graphql, run_id) if LOCK_ERROR.search(m)]


def materializations(
    graphql: GraphQL, asset: str, partitions: list[str] | None = None
) -> list[dict[str, Any]]:
    """The asset's materializations (of these partitions), newest first: partition, timestamp (ms), runId,
    and the integer and float metadata entries as ``metadata``."""
    found = graphql(_MATERIALIZATIONS, {"path": [asset], "partitions": partitions})["assetOrError"]
    out = []
    for event in found.get("assetMaterializations", []) if found else []:
        metadata = {
            e["label"]: e.get("intValue", e.get("floatValue")) for e in event["metadataEntries"] if len(e) > 1
        }
        out.append({**event, "metadata": metadata})
    return out


def sensor_states(graphql: GraphQL) -> dict[str, str]:
    """Each sensor of the code location and whether it is running."""
    found = graphql(_SENSORS)["sensorsOrError"]
    return {s["name"]: s["sensorState"]["status"] for s in found.get("results", [])}
