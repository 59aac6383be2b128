"""Step outputs kept in the warehouse as JSON, instead of pickles on a shared volume.

The training assets hand small descriptions to the assets after them (where the training set is, the
plan, the candidate's version and metrics). Dagster's default IO manager pickles them under the instance's
storage folder: in a cluster that is the shared data volume, written and unpickled by different pods. Here
they are rows of the warehouse table ``step_outputs`` (one per asset and partition, the last write wins),
written and read through the configured backend like every other table, so a run pod on any node reads
what another wrote, through the same snapshots and commits.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from hybridops.errors import HybridopsError
from hybridops.settings import Settings
from hybridops.warehouse.db import connect, read_frame, replace_rows, table_exists

OUTPUTS_TABLE = "step_outputs"
_SCHEMA = pa.schema(
    [
        ("asset_key", pa.string()),
        ("partition_key", pa.string()),
        ("run_id", pa.string()),
        ("written_at", pa.timestamp("us")),
        ("value_json", pa.string()),
    ]
)


def _plain(value: object) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"a step output holds a {type(value).__name__}, which JSON cannot keep")


def write_output(settings: Settings, asset_key: str, partition_key: str, run_id: str, value: object) -> None:
    """Store ``value`` (JSON types and numpy scalars) as the output of ``asset_key`` for ``partition_key``."""
    text = json.dumps(value, default=_plain, sort_keys=True)
    row = pa.Table.from_pylist(
        [
            {
                "asset_key": asset_key,
                "partition_key": partition_key,
                "run_id": run_id,
                "written_at": datetime.now(UTC).replace(tzinfo=None),
                "value_json": text,
            }
        ],
        _SCHEMA,
    )
    with connect(settings) as con:
        replace_rows(con, OUTPUTS_TABLE, row, {"asset_key": asset_key, "partition_key": partition_key})


def read_output(settings: Settings, asset_key: str, partition_key: str) -> Any:
    """The stored output of ``asset_key`` for ``partition_key``.

    Raises:
        HybridopsError: nothing was stored (materialize the asset first).
    """
    with connect(settings) as con:
        stored = (
            read_frame(
                con,
                f"select value_json from {OUTPUTS_TABLE} where asset_key = ? and partition_key = ?",
                [asset_key, partition_key],
            )["value_json"].tolist()
            if table_exists(con, OUTPUTS_TABLE)
            else []
        )
    if not stored:
        raise HybridopsError(
            f"no stored output of asset {asset_key}"
            + (f" (partition {partition_key})" if partition_key else "")
            + ": materialize it first"
        )
    return json.loads(stored[0])
