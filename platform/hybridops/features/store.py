"""The shared Feast feature store: configuration from settings, apply, materialize and retrieval.

hybridops never reads ``feature_store.yaml``; it builds a ``RepoConfig`` from ``Settings`` (registry, the
online store chosen by the ``feast.online_store`` union, the DuckDB offline store) and applies the objects
of ``dagster_project/feature_repo/flight_features.py`` with sources under ``settings.parquet_dir``.

Feast 0.67 behaviours this module works around (see the tests):

* ``get_historical_features`` may drop entity rows without a feature value in the ttl window; the wrapper
  left-joins the result back onto the entity frame by ``flight_id`` and asserts the row count.
* The online store does not apply ttls on reads and its responses order features their own way; the
  wrapper matches features by name.
* The SQLite store keeps the last row written (materialize months in order); the Redis store keeps the
  newest event and skipped corrected rows with an unchanged event time: :mod:`online_corrections` writes
  them over (scenario 8 of docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import time
import warnings
from datetime import datetime, timedelta
from functools import singledispatch
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import duckdb
import numpy as np
import pandas as pd

from hybridops.features.keys import month_window
from hybridops.features.online_corrections import rows_feast_would_skip, write_over
from hybridops.features.views import HOURLY_VIEWS, STATIC_VIEWS
from hybridops.settings import RedisOnlineStore, Settings, SqliteOnlineStore

if TYPE_CHECKING:  # Feast (~4 s to import) is imported by the functions that use it
    from feast import FeatureStore, RepoConfig

FEATURE_REPO_MODULE = "flight_features"
# The join keys of the views, in the order of the feature repo's VIEW_ENTITY.
ENTITY_COLUMNS = ["origin_utc_hour", "carrier", "route", "tailnum", "origin_hour", "origin_slot"]
ENTITY_DF_COLUMNS = ["flight_id", *ENTITY_COLUMNS, "event_timestamp"]
_EPOCH = datetime(1970, 1, 1)
_REQUEST_ID = "_hybridops_request_id"


# --- configuration ---------------------------------------------------------------------------------
def feature_repo_dir() -> Path:
    """``dagster_project/feature_repo`` (found without importing ``dagster_project``)."""
    spec = importlib.util.find_spec("dagster_project")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("dagster_project is not installed; the Feast repo lives in its feature_repo/")
    return Path(next(iter(spec.submodule_search_locations))) / "feature_repo"


def load_definitions_module() -> ModuleType:
    """Import ``feature_repo/flight_features.py`` by path (the folder is deliberately not a package)."""
    name = f"_hybridops_feature_repo_{FEATURE_REPO_MODULE}"
    if name in sys.modules:
        return sys.modules[name]
    path = feature_repo_dir() / f"{FEATURE_REPO_MODULE}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import Feast definitions from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@singledispatch
def online_store_config(store: object, settings: Settings) -> dict[str, Any]:
    """Feast's ``online_store`` block for one member of the ``feast.online_store`` settings union."""
    raise TypeError(f"unsupported online store settings: {type(store).__name__}")


@online_store_config.register
def _(store: SqliteOnlineStore, settings: Settings) -> dict[str, Any]:
    path = Path(store.path).expanduser() if store.path else settings.feast_dir / "online.db"
    return {"type": "sqlite", "path": str(path.resolve())}


@online_store_config.register
def _(store: RedisOnlineStore, settings: Settings) -> dict[str, Any]:
    return {"type": "redis", "connection_string": store.connection_string}


# URL scheme of ``feast.registry`` -> Feast registry type; anything else is a file path.
_SQL_SCHEMES = ("postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgres", "sqlite")


def registry_config(settings: Settings) -> dict[str, Any]:
    """File registry at ``<home>/feast/registry.db`` by default, the SQL registry for ``postgresql://``
    or ``sqlite://`` URLs, and by default on SQLite when the warehouse is the lakehouse."""
    registry = settings.feast.registry
    if registry is None and settings.warehouse.backend == "lakehouse":
        # The lakehouse is for several processes on one home. Feast's file registry is rewritten whole, in
        # place, by every apply and materialize: a process reading it meanwhile finds it empty or cut
        # short. Its SQL registry commits each change in a transaction.
        registry = f"sqlite:///{settings.feast_dir / 'registry.sqlite'}"
    if registry and urlparse(registry).scheme in _SQL_SCHEMES:
        config: dict[str, Any] = {"registry_type": "sql", "path": registry, "cache_ttl_seconds": 60}
        if urlparse(registry).scheme == "sqlite":  # wait for another process's write, as PostgreSQL does
            config["sqlalchemy_config_kwargs"] = {"echo": False, "connect_args": {"timeout": 60}}
        return config
    path = Path(registry).expanduser() if registry else settings.feast_dir / "registry.db"
    return {"registry_type": "file", "path": str(path.resolve()), "cache_ttl_seconds": 0}


def repo_config(settings: Settings) -> RepoConfig:
    """The ``RepoConfig`` of hybridops' feature store, built from settings only."""
    from feast import RepoConfig

    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(
        project=settings.feast.project,
        provider="local",
        registry=registry_config(settings),
        online_store=online_store_config(settings.feast.online_store, settings),
        offline_store={"type": settings.feast.offline_store},
        entity_key_serialization_version=3,
        materialization={"online_write_batch_size": settings.feast.online_write_batch_size},
        repo_path=feature_repo_dir(),
    )


def feature_store(settings: Settings) -> FeatureStore:
    """A ``FeatureStore`` configured from settings."""
    from feast import FeatureStore

    store = FeatureStore(config=repo_config(settings))
    if store.config.registry.registry_type == "sql":
        _open_sql_registry(store)
    return store


def _open_sql_registry(store: FeatureStore) -> None:
    """Open the SQL registry now, creating its tables if they are missing, and survive a race doing so.

    Feast creates the tables on first use with SQLAlchemy's check-then-create (``schema_mode: auto``). Run
    pods of one release (or processes on one home) starting together can all see no table and all issue
    ``CREATE TABLE``: every one but the first fails with "already exists". Opening again finds the tables.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(_APPLY_ATTEMPTS):
        try:
            store.registry  # noqa: B018 - the property creates (and caches) the registry
            return
        except (OperationalError, ProgrammingError, IntegrityError) as error:
            # PostgreSQL reports a lost race as a duplicate table or a duplicate pg_type row.
            lost_race = isinstance(error, IntegrityError) or "already exists" in str(error)
            if not lost_race or attempt == _APPLY_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


# --- apply and materialize -------------------------------------------------------------------------
def apply_definitions(store: FeatureStore, settings: Settings) -> list[str]:
    """Register entities, views, the feature service (sources under ``settings.parquet_dir``) and the
    Permissions of the reader and writer roles (``settings.feast``)."""
    from sqlalchemy.exc import IntegrityError

    repo = load_definitions_module()
    objects = [
        *repo.definitions(settings.parquet_dir),
        *repo.permissions(settings.feast.reader_role, settings.feast.writer_role),
    ]
    for attempt in range(_APPLY_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                # Feast warns on every apply with an on-demand view that they scale poorly for offline
                # retrieval; the platform never asks the offline store for them (it computes them itself).
                warnings.filterwarnings("ignore", "On demand feature view is an experimental", RuntimeWarning)
                store.apply(objects)
            break
        except IntegrityError:
            # Another process applied the same definitions at the same moment (run pods of one release
            # on a SQL registry): Feast's version-history insert lost the race. Applying again finds the
            # other's rows and only fills in what is missing.
            if attempt == _APPLY_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return [obj.name for obj in objects]


_APPLY_ATTEMPTS = 5


def _view_path(store: FeatureStore, view: str) -> str:
    source = store.get_feature_view(view).batch_source
    return str(source.path)  # type: ignore[union-attr]


def _rows_in_window(
    con: duckdb.DuckDBPyConnection, path: str, entity: str, start: datetime, end: datetime
) -> int:
    """Distinct entities with an event in ``[start, end]``: what Feast writes to the online store."""
    try:
        row = con.execute(
            f"""select count(distinct "{entity}") from read_parquet(?, hive_partitioning = false)
                where event_timestamp >= ? and event_timestamp <= ?""",
            [path, start, end],
        ).fetchone()
    except duckdb.IOException:  # no partition written yet
        return 0
    return int(row[0]) if row else 0


def materialize_month(store: FeatureStore, month_key: str) -> dict[str, int]:
    """Load the latest value per entity of the month's local window into the online store.

    The monthly views use ``[month start, month end)`` (local New York month in UTC); static views
    (``plane_profile``) everything up to the month end. Returns the number of online rows (entities)
    written per view.
    """
    return materialize_months(store, month_key, month_key)


def materialize_months(store: FeatureStore, first: str, last_month: str) -> dict[str, int]:
    """:func:`materialize_month` over the months ``first``..``last_month`` at once (one window).

    The hourly views (``HOURLY_VIEWS``: the weather and the intraday state, keyed by the hour or quarter hour
    of departure) are materialized over
    the last month only: an hour's key serves the flights of that hour, so the earlier months' hours are
    past that no flight to serve asks for (26k weather keys a year, 2k a month, through Feast's per-value
    conversion); the offline store keeps them for point-in-time joins. Month by month, each month's hours
    are written as before.
    """
    module = load_definitions_module()
    start, _ = month_window(first)
    last_start, end = month_window(last_month)
    last = end - timedelta(microseconds=1)  # Feast's materialization window is inclusive at both ends
    counts: dict[str, int] = {}
    windows: dict[datetime, list[str]] = {}
    con = duckdb.connect()  # one in-memory database for every query: opening one costs ~35 ms
    try:
        for view, entity in module.VIEW_ENTITY.items():
            view_start = _EPOCH if view in STATIC_VIEWS else last_start if view in HOURLY_VIEWS else start
            counts[view] = _rows_in_window(con, _view_path(store, view), entity, view_start, last)
            if counts[view]:
                windows.setdefault(view_start, []).append(view)
        for view_start, views in windows.items():
            # Read before Feast writes: rows of a re-materialized window that its Redis writer would skip.
            corrections = rows_feast_would_skip(store, con, views, view_start, last)
            # One call per window: Feast commits the registry once per call, not once per view.
            # It also prints coloured progress to stdout; the caller reports counts itself.
            with contextlib.redirect_stdout(io.StringIO()):
                store.materialize(start_date=view_start, end_date=last, feature_views=views)
            write_over(store, corrections)
    finally:
        con.close()
    return counts


# --- retrieval -------------------------------------------------------------------------------------
def feature_names() -> list[str]:
    """All features of the service, in a fixed order."""
    module = load_definitions_module()
    return [name for features in module.VIEW_FEATURES.values() for name in features]


def historical_features(store: FeatureStore, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time features for each row of ``entity_df`` (one output row per input row, same order).

    ``entity_df`` has ``flight_id``, the ``ENTITY_COLUMNS`` and ``event_timestamp`` (naive UTC); rows
    without a value in a view's ttl window get nulls for that view.
    """
    missing = set(ENTITY_DF_COLUMNS) - set(entity_df.columns)
    if missing:
        raise ValueError(f"entity_df lacks columns {sorted(missing)}")
    if entity_df["flight_id"].duplicated().any():
        raise ValueError("entity_df.flight_id must be unique")
    request = entity_df[ENTITY_DF_COLUMNS].copy()
    request["event_timestamp"] = pd.to_datetime(request["event_timestamp"])
    if request["event_timestamp"].dt.tz is None:
        request["event_timestamp"] = request["event_timestamp"].dt.tz_localize("UTC")
    retrieve = _RETRIEVAL.get(store.config.offline_store.type, _view_by_view)
    result = retrieve(store, request, load_definitions_module())
    # flight_id is unique, so aligning by it keeps every entity row in its original order.
    features = result.set_index("flight_id")[feature_names()].reindex(entity_df["flight_id"])
    out = entity_df.reset_index(drop=True).join(features.reset_index(drop=True))
    assert len(out) == len(entity_df), "historical features changed the number of entity rows"
    return out


def _all_views_at_once(store: FeatureStore, request: pd.DataFrame, module: ModuleType) -> pd.DataFrame:
    """One point-in-time query over every view (the DuckDB store keeps every entity row, nulls included)."""
    refs = [f"{view}:{name}" for view, names in module.VIEW_FEATURES.items() for name in names]
    found = store.get_historical_features(entity_df=request, features=refs).to_df()
    if len(found) != len(request):
        raise RuntimeError(f"Feast returned {len(found)} rows for {len(request)} entity rows")
    return found


def _view_by_view(store: FeatureStore, request: pd.DataFrame, module: ModuleType) -> pd.DataFrame:
    """One query per view over distinct (entity, timestamp) rows, each with its own request id.

    Feast's dask store mis-joins views keyed by different entities and collapses entity rows with equal
    keys and timestamps, and may drop rows without a value; left joins restore every row.
    """
    result = request[["flight_id"]]
    for view, features in module.VIEW_FEATURES.items():
        entity = module.VIEW_ENTITY[view]
        keys = request[[entity, "event_timestamp"]].drop_duplicates().reset_index(drop=True)
        keys[_REQUEST_ID] = np.arange(len(keys), dtype="int64")
        if len(keys):
            refs = [f"{view}:{name}" for name in features]
            found = store.get_historical_features(entity_df=keys, features=refs).to_df()
            found = found[[_REQUEST_ID, *features]].drop_duplicates(_REQUEST_ID)
        else:
            found = pd.DataFrame({c: pd.Series(dtype="float64") for c in [_REQUEST_ID, *features]})
        keyed = keys.merge(found, on=_REQUEST_ID, how="left", validate="one_to_one")
        per_flight = request[["flight_id", entity, "event_timestamp"]].merge(
            keyed, on=[entity, "event_timestamp"], how="left", validate="many_to_one"
        )
        result = result.merge(per_flight[["flight_id", *features]], on="flight_id", how="left")
        assert len(result) == len(request), f"{view}: historical features changed the number of rows"
    return result


# Retrieval strategy per offline store type (``feast.offline_store`` setting).
_RETRIEVAL = {"duckdb": _all_views_at_once, "dask": _view_by_view}


def online_features(store: FeatureStore, entity_rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Latest online values for each entity row (keys ``ENTITY_COLUMNS``).

    Columns are the entity keys then the features in ``feature_names()`` order, matched by name. Online
    reads apply no ttl: a value is returned however old it is.
    """
    rows = [{key: row.get(key) for key in ENTITY_COLUMNS} for row in entity_rows]
    names = feature_names()
    if not rows:
        return pd.DataFrame(columns=[*ENTITY_COLUMNS, *names])
    # The stored views of the service by name: its on-demand view (request features) needs request data.
    views = load_definitions_module().VIEW_FEATURES
    refs = [f"{view}:{name}" for view, features in views.items() for name in features]
    response = store.get_online_features(features=refs, entity_rows=rows).to_dict()
    frame = pd.DataFrame({key: [row[key] for row in rows] for key in ENTITY_COLUMNS})
    for name in names:
        frame[name] = response[name]
    return frame
