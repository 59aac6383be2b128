"""The Feast store end to end: apply, point-in-time retrieval, materialize and online reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from features_support import (
    entity_rows,
    fct_row,
    load_tables,
    origin_hours,
    origin_slots,
    origin_utc_hours,
    planes_frame,
    weather_frame,
)

from hybridops.features.compute import build_feature_tables
from hybridops.features.keys import (
    DEFAULT_HORIZON_MINUTES,
    WEATHER_TTL_HOURS,
    month_window,
    origin_hour_key,
    origin_slot_key,
    origin_utc_hour_key,
)
from hybridops.features.store import (
    apply_definitions,
    feature_names,
    feature_store,
    historical_features,
    materialize_month,
    materialize_months,
    online_features,
    registry_config,
    repo_config,
)
from hybridops.settings import FeastSettings, RedisOnlineStore, Settings

# feast[duckdb] (ibis) is a declared dependency: both offline stores always run.
BACKENDS = ["duckdb", "dask"]


def test_repo_config_follows_settings(tmp_path: Path) -> None:
    assert Settings(home=tmp_path).feast.offline_store == "duckdb"
    settings = Settings(home=tmp_path, feast=FeastSettings(offline_store="duckdb"))
    config = repo_config(settings)
    assert config.online_store.type == "sqlite"
    assert config.online_store.path == str(tmp_path.resolve() / "feast" / "online.db")
    assert config.registry.path == str(tmp_path.resolve() / "feast" / "registry.db")
    assert config.offline_store.type == settings.feast.offline_store
    assert config.entity_key_serialization_version == 3
    assert config.materialization_config.online_write_batch_size == 10_000

    cluster = Settings(
        home=tmp_path,
        feast=FeastSettings(
            registry="postgresql://feast:pw@db:5432/feast",
            online_store=RedisOnlineStore(connection_string="redis:6379"),
            online_write_batch_size=500,
            offline_store="dask",
        ),
    )
    assert registry_config(cluster)["registry_type"] == "sql"
    config = repo_config(cluster)
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == "redis:6379"
    assert config.registry.registry_type == "sql"
    assert config.materialization_config.online_write_batch_size == 500


@pytest.fixture(params=BACKENDS)
def leaky_store(request, con: duckdb.DuckDBPyConnection, tmp_path: Path):
    """Hourly EWR weather whose temperature is the hour (UTC) of Jan 5, and the hand-made flights."""
    weather = weather_frame([("EWR", f"2013-01-05 {h:02d}:00", float(h)) for h in range(10, 14)])
    flights = pd.DataFrame(
        [
            fct_row(1, "2013-01-01 12:00", 30.0),
            fct_row(2, "2013-01-04 03:00", 180.0),  # Jan 3 22:00 local, known Jan 4 06:00 UTC
        ]
    )
    load_tables(con, flights, weather, planes_frame([("N1", 2003, 100, 2)]))
    settings = Settings(home=tmp_path / "home", feast=FeastSettings(offline_store=request.param))
    # Horizon 0: the join instant is the departure itself, as the keys below are written.
    build_feature_tables(con, settings.parquet_dir, "2013-01", horizon_minutes=0)
    store = feature_store(settings)
    apply_definitions(store, settings)
    return store


def test_historical_features_never_leak_later_values(leaky_store) -> None:
    entity_df = pd.DataFrame(
        {
            "flight_id": ["a", "b", "c", "d", "e", "f", "g", "h", "i"],
            "origin": ["EWR", "EWR", "EWR", "EWR", "JFK", "EWR", "EWR", "EWR", "EWR"],
            "carrier": ["AA"] * 9,
            "route": ["EWR-IAH"] * 9,
            "tailnum": ["N1", "N1", None, "N1", "N1", "N1", "N1", "N1", "N1"],
            "event_timestamp": pd.to_datetime(
                [
                    "2013-01-05 11:30",  # between hours: 11:00's value, never 12:00's
                    "2013-01-05 12:00",  # exactly at an observation
                    "2013-01-05 09:59",  # before every observation
                    "2013-01-05 16:30",  # 3.5 h after the last one: beyond the 3 h ttl
                    "2013-01-05 11:30",  # no weather for JFK
                    "2013-01-04 04:59",  # just before Jan 4 00:00 local
                    "2013-01-05 03:00",  # Jan 4 22:00 local: flight 2's hour, a day later
                    "2013-01-06 03:00",  # Jan 5 22:00 local
                    "2013-01-05 16:00",  # exactly 3 h after the last one: the ttl's edge, still valid
                ]
            ),
        }
    )
    # The key of a flight departing at event_timestamp: its local hour (a: 06:30 local -> EWR-06).
    entity_df["origin_hour"] = origin_hours(entity_df["origin"], entity_df["event_timestamp"])
    assert entity_df["origin_hour"].tolist() == [
        "EWR-06", "EWR-07", "EWR-04", "EWR-11", "JFK-06", "EWR-23", "EWR-22", "EWR-22", "EWR-11",
    ]  # fmt: skip
    # The weather key: the UTC hour of departure. d's key (16:00) holds the 13:00 observation too (it is
    # written under the hours its ttl reaches), so only the ttl keeps d from reading it.
    entity_df["origin_utc_hour"] = origin_utc_hours(entity_df["origin"], entity_df["event_timestamp"])
    entity_df["origin_slot"] = origin_slots(entity_df["origin"], entity_df["event_timestamp"])
    assert entity_df["origin_utc_hour"].tolist()[:4] == [
        "EWR-2013-01-05T11", "EWR-2013-01-05T12", "EWR-2013-01-05T09", "EWR-2013-01-05T16",
    ]  # fmt: skip
    shuffled = entity_df.sample(frac=1, random_state=1).reset_index(drop=True)
    out = historical_features(leaky_store, shuffled).set_index("flight_id")
    assert len(out) == len(entity_df)
    assert list(out.columns[-len(feature_names()) :]) == feature_names()
    assert out.loc["a", "temp"] == 11.0
    assert out.loc["b", "temp"] == 12.0
    assert pd.isna(out.loc["c", "temp"]) and pd.isna(out.loc["d", "temp"]) and pd.isna(out.loc["e", "temp"])
    assert out.loc["i", "temp"] == 13.0
    # Carrier stats: at Jan 4 04:59 UTC the latest row is Jan 3 00:00 local (flight 1 only), and the
    # 180-minute delay of flight 2 is not known before Jan 5 00:00 local.
    assert out.loc["f", "carrier_flights_7d"] == 1
    assert out.loc["f", "carrier_dep_delay_mean_7d"] == pytest.approx(30.0)
    assert out.loc["a", "carrier_flights_7d"] == 2
    assert out.loc["a", "carrier_dep_delay_mean_7d"] == pytest.approx(105.0)
    assert out.loc["a", "plane_age_years"] == 10
    assert pd.isna(out.loc["c", "plane_age_years"])
    assert out.loc["c", "carrier_flights_7d"] == 2  # a null tailnum does not hide the other views
    # Origin-hour stats: EWR-07 holds flight 1 (07:00 local, known Jan 1 12:30 UTC), read at b from the
    # Jan 5 00:00 local row; flight 2 (EWR-22, Jan 3 22:00 local) is known Jan 4 06:00 UTC, so its first
    # row is Jan 5 00:00 local (05:00 UTC): after g's 03:00, before h's Jan 6 03:00.
    assert out.loc["b", "origin_hour_flights_28d"] == 1
    assert out.loc["b", "origin_hour_dep_delay_mean_28d"] == pytest.approx(30.0)
    assert out.loc["b", "origin_hour_delay_rate_28d"] == pytest.approx(1.0)
    assert out.loc["h", "origin_hour_flights_28d"] == 1
    assert out.loc["h", "origin_hour_dep_delay_mean_28d"] == pytest.approx(180.0)
    assert out.loc["h", "origin_hour_delay_rate_28d"] == pytest.approx(1.0)
    origin_hour_names = [
        "origin_hour_flights_28d",
        "origin_hour_dep_delay_mean_28d",
        "origin_hour_delay_rate_28d",
    ]
    for fid in ["a", "c", "d", "e", "f", "g"]:  # no flight of that origin and hour is known yet
        assert out.loc[fid, origin_hour_names].isna().all(), fid
    assert out.loc["g", "carrier_flights_7d"] == 1  # g's own carrier row (Jan 4 00:00 local) is found


def test_a_range_materializes_the_last_months_weather_hours_only(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    weather = weather_frame([("EWR", "2013-01-20 12:00", 1.0), ("EWR", "2013-02-10 12:00", 2.0)])
    flights = pd.DataFrame(
        [
            fct_row(1, "2013-01-10 12:00", 30.0),
            fct_row(2, "2013-02-05 12:00", 0.0, carrier="UA", dest="ORD"),
        ]
    )
    load_tables(con, flights, weather, planes_frame([("N1", 2003, 100, 2)]))
    settings = Settings(home=tmp_path / "home")
    for month in ("2013-01", "2013-02"):
        build_feature_tables(con, settings.parquet_dir, month)
    store = feature_store(settings)
    apply_definitions(store, settings)

    written = materialize_months(store, "2013-01", "2013-02")

    # The February observation under its 4 hour keys; January's hours are past (offline only).
    assert written["origin_weather"] == WEATHER_TTL_HOURS + 1
    keys = {
        "carrier": "AA",
        "route": "EWR-IAH",
        "tailnum": "N1",
        "origin_hour": "EWR-07",
        "origin_slot": "EWR-x",
    }
    rows = [
        dict(keys, origin_utc_hour="EWR-2013-02-10T14"),
        dict(keys, origin_utc_hour="EWR-2013-01-20T12", carrier="UA"),
    ]
    online = online_features(store, rows)
    assert online.loc[0, "temp"] == 2.0 and pd.isna(online.loc[1, "temp"])
    # The daily views over the whole range: AA (January) and UA (February) both have a row online.
    assert online["carrier_flights_7d"].notna().all()


@pytest.fixture(scope="module", params=BACKENDS)
def january_store(request, january_frames, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("january")
    settings = Settings(home=tmp / "home", feast=FeastSettings(offline_store=request.param))
    con = duckdb.connect(str(tmp / "warehouse.duckdb"))
    try:
        load_tables(con, *january_frames)
        built = build_feature_tables(con, settings.parquet_dir, "2013-01")
    finally:
        con.close()
    store = feature_store(settings)
    applied = apply_definitions(store, settings)
    written = materialize_month(store, "2013-01")
    return settings, store, built, applied, written


def test_apply_and_materialize_counts_match_online_store(january_store, january_frames) -> None:
    settings, _store, built, applied, written = january_store
    assert set(applied) == {
        "origin_utc_hour", "carrier", "route", "tailnum", "origin_hour", "origin_slot", "origin_weather",
        "carrier_delay_stats", "route_delay_stats", "origin_hour_delay_stats", "plane_profile",
        "origin_intraday", "tail_last_flight", "flight_request", "flight_delay_v1",
        "online-read", "online-write",
    }  # fmt: skip
    weather = january_frames[1]
    start, end = month_window("2013-01")
    in_window = weather[(weather["time_hour"] >= start) & (weather["time_hour"] < end)]
    assert built["origin_weather"] == len(in_window) * (WEATHER_TTL_HOURS + 1) > 8000
    # Online: one row per origin and departure hour that an observation of the window reaches (from the
    # observation plus the horizon on).
    lead = pd.Timedelta(minutes=DEFAULT_HORIZON_MINUTES)
    reached = {
        origin_utc_hour_key(o, t + lead + pd.Timedelta(hours=k))
        for o, t in zip(in_window["origin"], in_window["time_hour"], strict=True)
        for k in range(WEATHER_TTL_HOURS + 1)
    }
    assert written["origin_weather"] == len(reached)
    assert written["carrier_delay_stats"] == 16
    assert written["plane_profile"] == built["plane_profile"]
    # Origin-hours online: every key with a row in January, i.e. with a flight known before the last
    # day's midnight (Jan 31 00:00 local = 05:00 UTC); January's flights are all known after Jan 1 - 28 days.
    fct = january_frames[0]
    known = fct["sched_dep_utc"] + pd.to_timedelta(fct["dep_delay"].fillna(0), unit="m")
    last_day = pd.Timestamp("2013-01-31 05:00")
    keys = {
        origin_hour_key(o, t)
        for o, t, k in zip(fct["origin"], fct["sched_dep_local"], known, strict=True)
        if k < last_day
    }
    assert written["origin_hour_delay_stats"] == len(keys) > 40
    with sqlite3.connect(settings.feast_dir / "online.db") as db:
        for view, rows in written.items():
            (online,) = db.execute(f"select count(distinct entity_key) from hybridops_{view}").fetchone()
            assert online == rows, view
            (cells,) = db.execute(f"select count(*) from hybridops_{view}").fetchone()
            assert cells == rows * len(_view_features(view)), view


def test_the_permissions_are_stored_and_not_enforced_on_a_laptop(january_store) -> None:
    """The reader/writer Permissions are in the registry, and the platform's own SDK reads and writes (no
    Feast server, no auth) go on: Feast checks Permissions only in a server that authenticates."""
    from feast.permissions.security_manager import get_security_manager

    settings, store, _built, _applied, written = january_store
    roles = {
        p.name: (sorted(p.policy.roles), sorted(a.value for a in p.actions)) for p in store.list_permissions()
    }
    reader, writer = settings.feast.reader_role, settings.feast.writer_role
    assert roles == {
        "online-read": (sorted([reader, writer]), ["describe", "read_online"]),
        "online-write": ([writer], ["write_offline", "write_online"]),
    }
    assert get_security_manager() is None  # nothing in this process would enforce them
    assert written["carrier_delay_stats"] == 16  # materialized (a write_online) with the Permissions applied
    answer = store.get_online_features(
        features=["carrier_delay_stats:carrier_flights_7d"], entity_rows=[{"carrier": "UA"}]
    ).to_dict()
    assert answer["carrier_flights_7d"][0] is not None  # and read back (a read_online)


def _view_features(view: str) -> list[str]:
    from hybridops.features.store import load_definitions_module

    return list(load_definitions_module().VIEW_FEATURES[view])


def test_online_equals_offline_at_the_window_end(january_store, january_frames) -> None:
    _settings, store, *_ = january_store
    fct = january_frames[0]
    sample = fct[fct["flight_date"] >= pd.Timestamp("2013-01-30").date()].sample(60, random_state=7)
    _, end = month_window("2013-01")
    at = end - pd.Timedelta(microseconds=1)
    entity_df = sample[["flight_id", "origin", "carrier", "route", "tailnum"]].assign(
        origin_hour=[
            origin_hour_key(o, t) for o, t in zip(sample["origin"], sample["sched_dep_local"], strict=True)
        ],
        origin_utc_hour=[origin_utc_hour_key(o, at) for o in sample["origin"]],
        # the departure slot whose as-of time is the window end: its intraday row is the last one written
        origin_slot=[
            origin_slot_key(o, at + pd.Timedelta(minutes=DEFAULT_HORIZON_MINUTES)) for o in sample["origin"]
        ],
        event_timestamp=at,
    )
    offline = historical_features(store, entity_df).reset_index(drop=True)
    online = online_features(store, entity_df.to_dict("records"))
    assert len(online) == len(offline) == 60
    for name in feature_names():
        off = offline[name].astype("float64").to_numpy()
        on = pd.to_numeric(online[name], errors="coerce").astype("float64").to_numpy()
        known = ~np.isnan(off)
        assert known.mean() > 0.5, name  # most sampled entities have a value at the window end
        np.testing.assert_allclose(on[known], off[known], err_msg=name)


def test_historical_features_keep_every_row(january_store, january_frames) -> None:
    settings, store, *_ = january_store
    fct = january_frames[0]
    size = 3000 if settings.feast.offline_store == "duckdb" else 600  # the dask store is slow
    sample = fct.sample(size, random_state=3)
    entity_df = entity_rows(sample)
    out = historical_features(store, entity_df)
    assert len(out) == len(entity_df)
    assert out["flight_id"].tolist() == entity_df["flight_id"].tolist()
    # The weather feature equals a backward as-of join with a 3-hour tolerance (no later values).
    weather = january_frames[1].sort_values("time_hour")
    expected = pd.merge_asof(
        entity_df.sort_values("event_timestamp"),
        weather[["origin", "time_hour", "temp"]],
        left_on="event_timestamp",
        right_on="time_hour",
        by="origin",
        direction="backward",
        tolerance=pd.Timedelta(hours=3),
    ).set_index("flight_id")["temp"]
    got = out.set_index("flight_id")["temp"]
    pd.testing.assert_series_equal(
        got.astype("float64"), expected.reindex(got.index).astype("float64"), check_names=False
    )


def test_a_home_shared_by_processes_gets_a_transactional_registry(tmp_path: Path) -> None:
    """With the lakehouse (several processes on one home) the default registry is Feast's SQL registry on
    SQLite, which waits for another process's write; the laptop default stays the file registry."""
    from hybridops.settings import LakehouseWarehouse

    assert registry_config(Settings(home=tmp_path))["registry_type"] == "file"
    shared = registry_config(Settings(home=tmp_path, warehouse=LakehouseWarehouse()))
    assert shared["registry_type"] == "sql"
    assert shared["path"] == f"sqlite:///{tmp_path.resolve()}/feast/registry.sqlite"
    assert shared["sqlalchemy_config_kwargs"]["connect_args"] == {"timeout": 60}


def test_the_sql_registry_survives_another_process_creating_its_tables_first(tmp_path: Path) -> None:
    """Four run pods starting together all find no registry table and all create them: the losers get
    "table ... already exists" (seen in CI with four ``hybridops run`` on one home). The race is made
    certain here: just before Feast creates a table, another connection creates it."""
    from feast.infra.registry.sql import metadata
    from sqlalchemy import create_engine, event

    from hybridops.settings import LakehouseWarehouse

    settings = Settings(home=tmp_path, warehouse=LakehouseWarehouse())
    other = create_engine(registry_config(settings)["path"])
    table = metadata.tables["stream_feature_views"]

    def create_it_first(target, connection, **_kw) -> None:  # type: ignore[no-untyped-def]
        target.create(other)

    event.listen(table, "before_create", create_it_first, once=True)
    try:
        store = feature_store(settings)
    finally:
        if event.contains(table, "before_create", create_it_first):
            event.remove(table, "before_create", create_it_first)
        other.dispose()
    tables = sqlite3.connect(tmp_path / "feast" / "registry.sqlite").execute(
        "select name from sqlite_master where type = 'table'"
    )
    assert {"entities", "feature_views", "stream_feature_views"} <= {name for (name,) in tables}
    assert apply_definitions(store, settings)
