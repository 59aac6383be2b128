"""Scenario 8 of docs/reliability.md: online equals offline at the same timestamp on Redis, also after a
corrected re-materialization.

A real redis-server on loopback. January is materialized; then the warehouse is corrected in place (every
plane's year and seats, every flight's delay, every weather hour's temperature) with unchanged event times
(the plane profile is always stamped 2013-01-01, a day's statistics keep their day, a weather hour its hour)
and January is materialized again. Before and after, for the flights of January 31 (the window's last day,
where a view's latest online value is the one a point-in-time join picks unless it is stamped after the
flight's as-of time, which the service refuses): Feast's
``get_online_features``, hybridops' own one-round-trip reader (``OnlineFeatureReader`` on
``online_redis``, with the views' ttl applied as the service does) and a running ``hybridops serve``
process equal Feast's offline point-in-time features (and their score) at the flights' departures, for
every view. Feast's plain materialization is shown to leave the old values (the bug this works around),
and a value newer than the window (a later month's) is not overwritten by re-materializing the window.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import requests
from serving_support import RedisServer, World, service_process

from hybridops.features.compute import build_feature_tables
from hybridops.features.keys import month_window
from hybridops.features.request import with_request_features
from hybridops.features.store import (
    ENTITY_COLUMNS,
    apply_definitions,
    feature_names,
    feature_store,
    historical_features,
    load_definitions_module,
    materialize_month,
    online_features,
)
from hybridops.inference.batch import score, scoring_entities
from hybridops.serving.features import OnlineFeatureReader
from hybridops.settings import Settings

module = load_definitions_module()
VIEWS = list(module.VIEW_FEATURES)
MONTH = "2013-01"


def _settings(world: World, home: Path, redis: RedisServer) -> Settings:
    """A home of its own (warehouse, Parquet, Feast registry) on Redis, the world's champion model."""
    return Settings(
        home=home,
        feast=world.settings.feast.model_copy(update={"online_store": redis.online_store}),
        # the world's registry and its artifact root (this home has none of its own)
        mlflow=world.settings.mlflow.model_copy(
            update={
                "tracking_uri": world.settings.mlflow_tracking_uri,
                "allowed_artifact_roots": [world.settings.mlflow_artifacts_dir.resolve().as_uri()],
            }
        ),
        serving=world.settings.serving,
    )


def _last_day(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The flights of January 31 (local) with their entity keys, departure order."""
    entities = scoring_entities(con, MONTH)
    flights = con.execute(
        "select flight_id, flight, sched_dep_local from fct_flights where flight_date = date '2013-01-31'"
    ).df()
    return entities.merge(flights, on="flight_id", how="inner").reset_index(drop=True)


def _offline(settings: Settings, flights: pd.DataFrame) -> pd.DataFrame:
    """The flights as batch scoring sees them: point-in-time Feast features, then request features."""
    return with_request_features(historical_features(feature_store(settings), flights))


def _view_matrix(frame: pd.DataFrame, view: str) -> np.ndarray:
    return frame[list(module.VIEW_FEATURES[view])].astype("float64").to_numpy()


def _assert_online_equals_offline(
    settings: Settings, flights: pd.DataFrame, offline: pd.DataFrame
) -> pd.DataFrame:
    """Compare the online reads with Feast's offline point-in-time join; returns what the service serves.

    The online store keeps each key's latest value of the window. Where it is stamped no later than a
    flight's as-of time it is the value the point-in-time join picks at the as-of time, and the service
    serves it; where it is newer (the plane flew again that day, a later day's statistics) the service
    refuses it, and the raw online value equals the offline join at the window's end instead, the
    instant the store was materialized to.
    """
    rows = flights[ENTITY_COLUMNS].to_dict("records")
    feast = online_features(feature_store(settings), rows)
    reader = OnlineFeatureReader(settings)
    try:
        batch = reader.read(rows)
        raw = pd.DataFrame(batch.matrix.copy(), columns=feature_names())
        stamped = batch.event_ts.copy()
        as_of = flights["event_timestamp"].dt.tz_localize("UTC").map(pd.Timestamp.timestamp).to_numpy()
        reader.expire(batch, as_of)  # the ttl and the as-of time, as the service applies them
        view_index = {name: v for v, name in enumerate(reader.view_names)}
    finally:
        reader.close()
    ours = pd.DataFrame(batch.matrix, columns=feature_names())
    _, end = month_window(MONTH)
    at_end = _offline(
        settings, flights.assign(event_timestamp=pd.Timestamp(end) - pd.Timedelta(microseconds=1))
    )
    served = offline.copy()
    for view in VIEWS:
        newer = stamped[:, view_index[view]] > as_of  # NaN (nothing online) compares False
        expected = _view_matrix(offline, view)
        expected[newer] = np.nan
        served.loc[newer, list(module.VIEW_FEATURES[view])] = np.nan
        latest = _view_matrix(at_end, view)
        assert np.isfinite(expected).any() or np.isfinite(latest[newer]).any(), f"{view}: nothing to compare"
        np.testing.assert_array_equal(_view_matrix(ours, view), expected, err_msg=f"{view}: hybridops reader")
        # Feast's own online read applies no ttl: compare where the offline join found a value
        found = ~np.isnan(expected)
        np.testing.assert_array_equal(
            _view_matrix(feast, view)[found], expected[found], err_msg=f"{view}: Feast get_online_features"
        )
        # the refused values are the latest of the window, as the offline join gives them at its end
        refused = newer & ~np.isnan(latest).all(axis=1)
        for reading, what in (
            (_view_matrix(raw, view), "hybridops reader"),
            (_view_matrix(feast, view), "Feast"),
        ):
            np.testing.assert_array_equal(
                reading[refused], latest[refused], err_msg=f"{view}: {what}, newer than the as-of time"
            )
    return served


def _predict(url: str, flights: pd.DataFrame) -> tuple[np.ndarray, str]:
    payload = [
        {
            "carrier": row.carrier,
            "flight": int(row.flight),
            "origin": row.origin,
            "dest": row.dest,
            "tailnum": row.tailnum,
            "sched_dep": pd.Timestamp(row.sched_dep_local).isoformat(),
        }
        for row in flights.itertuples()
    ]
    body = requests.post(f"{url}/predict", json={"flights": payload}, timeout=60).json()
    return np.array([p["delay_probability"] for p in body["predictions"]]), body["model"]["version"]


def _correct(con: duckdb.DuckDBPyConnection) -> None:
    """Other values, the same event times (what a corrected source file gives)."""
    con.execute("update planes set year = year - 7, seats = seats + 50")
    con.execute(
        "update fct_flights set dep_delay = dep_delay + 45, delayed_15 = dep_delay + 45 >= 15 "
        "where not cancelled"
    )
    con.execute("update weather set temp = temp + 10, dewp = dewp + 10")


def test_online_equals_offline_after_a_corrected_rematerialization(world: World, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = _settings(world, tmp_path / "home", redis)
        warehouse = tmp_path / "features.duckdb"
        shutil.copy(world.warehouse, warehouse)
        with duckdb.connect(str(warehouse)) as con:
            build_feature_tables(con, settings.parquet_dir, MONTH)
            store = feature_store(settings)
            apply_definitions(store, settings)
            materialize_month(store, MONTH)
            flights = _last_day(con)
        assert len(flights) >= 5 and flights["tailnum"].notna().any()
        offline_before = _offline(settings, flights)
        before = _assert_online_equals_offline(settings, flights, offline_before)

        with service_process(settings, tmp_path / "serve.log") as service:
            served, version = _predict(service.url, flights)
            booster = world.boosters[version]
            np.testing.assert_allclose(served, score(booster, before), rtol=1e-12)

            with duckdb.connect(str(warehouse)) as con:
                _correct(con)
                build_feature_tables(con, settings.parquet_dir, MONTH)
            corrected = _offline(settings, flights)
            for view in VIEWS:  # the correction changed every view offline
                changed = ~np.isclose(
                    _view_matrix(corrected, view), _view_matrix(offline_before, view), equal_nan=True
                )
                assert changed.any(), f"{view}: the correction changed nothing offline"

            # Feast's own materialization (the bug): its Redis writer skips rows whose event time is not
            # newer than the stored one, so the corrected plane profile never reaches Redis.
            start, end = month_window(MONTH)
            store = feature_store(settings)
            store.materialize(start_date=start, end_date=end - pd.Timedelta(microseconds=1))
            stale = online_features(store, flights[ENTITY_COLUMNS].to_dict("records"))
            found = ~np.isnan(_view_matrix(corrected, "plane_profile"))
            np.testing.assert_array_equal(
                _view_matrix(stale, "plane_profile")[found],
                _view_matrix(offline_before, "plane_profile")[found],
            )

            started = time.perf_counter()
            materialize_month(feature_store(settings), MONTH)
            print(f"re-materialization with corrections: {time.perf_counter() - started:.2f} s")
            after = _assert_online_equals_offline(settings, flights, corrected)
            # the running service reads the corrected values, no restart
            served, version = _predict(service.url, flights)
            np.testing.assert_allclose(served, score(world.boosters[version], after), rtol=1e-12)
            assert not np.allclose(served, score(world.boosters[version], before))
    finally:
        redis.stop()


def test_rematerializing_a_window_keeps_a_newer_online_value(world: World, tmp_path: Path) -> None:
    """A value from a later window (here written directly, stamped in February) is newer than January's
    window: re-materializing January leaves it, as Feast's writer does."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = _settings(world, tmp_path / "home", redis)
        with duckdb.connect(str(world.warehouse), read_only=True) as con:
            build_feature_tables(con, settings.parquet_dir, MONTH)
        store = feature_store(settings)
        apply_definitions(store, settings)
        materialize_month(store, MONTH)
        later = pd.DataFrame(
            {
                "carrier": ["UA"],
                "carrier_flights_7d": pd.array([999], dtype="int64"),
                "carrier_dep_delay_mean_7d": [1.5],
                "carrier_delay_rate_7d": [0.5],
                "carrier_cancel_rate_7d": [0.0],
                "carrier_delay_rate_28d": [0.25],
                "event_timestamp": [pd.Timestamp("2013-02-10 05:00")],
            }
        )
        store.write_to_online_store("carrier_delay_stats", later)
        materialize_month(feature_store(settings), MONTH)
        row = {key: "none" for key in ENTITY_COLUMNS} | {"carrier": "UA"}
        online = online_features(feature_store(settings), [row])
        assert online.loc[0, "carrier_flights_7d"] == 999 and online.loc[0, "carrier_delay_rate_28d"] == 0.25
    finally:
        redis.stop()
