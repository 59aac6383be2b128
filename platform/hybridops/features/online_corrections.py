"""Corrected rows reach an online store whose writer keeps only newer events (Feast's Redis store).

Feast's Redis writer (``RedisOnlineStore.online_write_batch``) skips a row whose event time is not newer than
the one stored for its entity. Corrected data keeps its event time (the plane profile is always stamped
2013-01-01, a recomputed day of statistics keeps its day, a corrected weather hour its hour), so a
re-materialization left the old values online while the offline store had the new ones. The SQLite store
keeps the last row written and needs none of this.

Before Feast materializes a window, :func:`rows_feast_would_skip` finds the rows its writer would skip
although they replace what is stored: the window's latest row of an entity whose stored event time lies in
``[that row's event time, window end]`` (a value from an earlier materialization of the same window). A
stored value newer than the window end comes from a later window and stays. After the materialization
:func:`write_over` writes those rows through ``FeatureStore.write_to_online_store`` on the same store with
the writer's own option to write without the check (Redis: ``skip_dedup``). Stored event times are read
with Feast's ``OnlineStore.online_read``: nothing here depends on Feast's storage layout.

Not covered: an entity whose rows all left the window in the correction keeps its old online value
(nothing in the new data names it).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

if TYPE_CHECKING:
    from feast import FeatureStore

# Online store type -> options under which its writer writes every row whatever the stored event time.
# Stores absent here (SQLite) already keep the last row written.
OVERWRITE_OPTIONS: dict[str, dict[str, Any]] = {"redis": {"skip_dedup": True}}


def keeps_newer_events(store: FeatureStore) -> bool:
    """Whether the store's online writer skips rows that are not newer than the stored ones."""
    return store.config.online_store.type in OVERWRITE_OPTIONS


def _latest_rows(
    con: duckdb.DuckDBPyConnection,
    path: str,
    entity: str,
    columns: list[str],
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    """Each entity's latest row in ``[start, end]``: the row Feast's materialization writes for it."""
    selected = ", ".join(f'"{name}"' for name in [entity, *columns, "event_timestamp"])
    query = f"""select {selected} from read_parquet(?, hive_partitioning = false)
        where event_timestamp >= ? and event_timestamp <= ? and "{entity}" is not null
        qualify row_number() over (partition by "{entity}" order by event_timestamp desc) = 1"""
    cursor = con.cursor()  # of its own: the caller's connection may hold an unfinished result
    try:
        table = cursor.sql(query, params=[path, start, end]).to_arrow_table()
    except duckdb.IOException:  # no partition written yet
        return pd.DataFrame()
    finally:
        cursor.close()
    # Arrow types kept (nullable integers stay integers): Feast converts them as it does when it
    # materializes the same Parquet rows.
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def rows_feast_would_skip(
    store: FeatureStore,
    con: duckdb.DuckDBPyConnection,
    views: list[str],
    start: datetime,
    end: datetime,
) -> dict[str, pd.DataFrame]:
    """Per view, the window's latest rows that Feast's writer will skip although they replace the stored
    value (see the module docstring). Empty when the store keeps the last row written."""
    if not keeps_newer_events(store):
        return {}
    from feast.infra.online_stores.helpers import get_online_store_from_config
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    online = get_online_store_from_config(store.config.online_store)
    found: dict[str, pd.DataFrame] = {}
    for name in views:
        view = store.get_feature_view(name)
        (entity,) = view.join_keys
        features = [feature.name for feature in view.features]
        latest = _latest_rows(con, str(view.batch_source.path), entity, features, start, end)  # type: ignore[union-attr]
        if latest.empty:
            continue
        keys = [
            EntityKey(join_keys=[entity], entity_values=[Value(string_val=str(value))])
            for value in latest[entity]
        ]
        stored = online.online_read(store.config, view, keys, features[:1])
        # A missing row reads as no timestamp (SQLite) or as the epoch (Redis): both older than the window.
        stored_at = pd.to_datetime([at for at, _ in stored], utc=True).tz_localize(None)
        event_at = pd.to_datetime(latest["event_timestamp"].astype("datetime64[us]"))
        skipped = (stored_at >= event_at) & (stored_at <= pd.Timestamp(end))
        if skipped.any():
            found[name] = latest[skipped].reset_index(drop=True)
    return found


def write_over(store: FeatureStore, rows: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Write ``rows`` (per view) whatever event time the online store holds; returns the rows written."""
    if not rows:
        return {}
    from feast import FeatureStore, RepoConfig

    config = store.config
    online = {**config.online_store.model_dump(mode="json"), **OVERWRITE_OPTIONS[config.online_store.type]}
    overwriting = FeatureStore(
        config=RepoConfig(**{**config.model_dump(by_alias=True), "online_store": online})
    )
    for view, frame in rows.items():
        overwriting.write_to_online_store(view, frame)
    return {view: len(frame) for view, frame in rows.items()}
