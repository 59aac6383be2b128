"""Point-in-time features cached per month and feature-data version."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from features_support import entity_rows, load_tables

from hybridops.features import pit_cache
from hybridops.features.compute import build_feature_tables
from hybridops.features.pit_cache import cached_historical_features, feature_data_version
from hybridops.features.store import apply_definitions, feature_names, feature_store, historical_features
from hybridops.settings import Settings


@pytest.fixture(scope="module")
def store_and_entities(january_frames, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pit")
    settings = Settings(home=tmp / "home")
    con = duckdb.connect(str(tmp / "warehouse.duckdb"))
    try:
        load_tables(con, *january_frames)
        build_feature_tables(con, settings.parquet_dir, "2013-01")
    finally:
        con.close()
    store = feature_store(settings)
    apply_definitions(store, settings)
    sample = january_frames[0].sample(2000, random_state=7)
    # Two "months" of entity rows, so one can be cached while the other is not.
    entities = entity_rows(sample)
    entities["month_key"] = ["2013-01-a" if i % 2 else "2013-01-b" for i in range(len(entities))]
    return settings, store, entities


@pytest.fixture
def feast_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Entity rows of every retrieval that reached Feast."""
    calls: list[int] = []

    def counting(store, rows):
        calls.append(len(rows))
        return historical_features(store, rows)

    monkeypatch.setattr(pit_cache, "historical_features", counting)
    return calls


def test_cached_equals_a_fresh_retrieval_and_is_reused(store_and_entities, tmp_path, feast_calls) -> None:
    _settings, store, entities = store_and_entities
    cache = tmp_path / "cache"
    expected = historical_features(store, entities)

    first = cached_historical_features(store, entities, cache)
    pd.testing.assert_frame_equal(first, expected, check_dtype=False)
    assert feast_calls == [len(entities)]  # both months in one query
    assert len(list(cache.rglob("*.parquet"))) == 2  # one file per month

    shuffled = entities.sample(frac=1.0, random_state=1).reset_index(drop=True)
    again = cached_historical_features(store, shuffled, cache)
    assert feast_calls == [len(entities)]  # nothing asked again
    assert again["flight_id"].tolist() == shuffled["flight_id"].tolist()
    pd.testing.assert_frame_equal(
        again.set_index("flight_id")[feature_names()],
        expected.set_index("flight_id").loc[shuffled["flight_id"], feature_names()],
        check_dtype=False,
    )


def test_only_flights_not_cached_with_the_same_keys_are_retrieved(
    store_and_entities, tmp_path, feast_calls
) -> None:
    _settings, store, entities = store_and_entities
    cache = tmp_path / "cache"
    # Training sees labelled flights, scoring every flight: the cache works per flight, not per frame.
    some = entities.iloc[::3]
    cached_historical_features(store, some, cache)
    assert feast_calls == [len(some)]

    moved = entities.copy()
    moved.loc[0, "event_timestamp"] = moved.loc[0, "event_timestamp"] + pd.Timedelta(hours=6)
    out = cached_historical_features(store, moved, cache)
    rest = len(entities) - len(some) + 1  # the others, and the flight whose departure moved
    assert feast_calls == [len(some), rest]
    pd.testing.assert_frame_equal(out, historical_features(store, moved), check_dtype=False)

    cached_historical_features(store, moved.iloc[5:50], cache)
    assert len(feast_calls) == 2  # a subset of what is cached asks nothing


def test_rewritten_feature_data_is_retrieved_again(store_and_entities, tmp_path, feast_calls) -> None:
    _settings, store, entities = store_and_entities
    cache = tmp_path / "cache"
    cached_historical_features(store, entities, cache)
    before = feature_data_version(store)
    source = Path(sorted(Path(p) for p in _source_files(store, "origin_weather"))[0])
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # what a rebuild does
    try:
        assert feature_data_version(store) != before
        cached_historical_features(store, entities, cache)
        assert feast_calls == [len(entities), len(entities)]
        assert [p.name for p in cache.iterdir()] == [feature_data_version(store)]  # the old version is gone
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _source_files(store, view: str) -> list[str]:
    return glob.glob(str(store.get_feature_view(view).batch_source.path))


def _arrow_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its object columns as ``string[pyarrow]`` (how training's entities come)."""
    return frame.astype({c: "string[pyarrow]" for c in frame.columns if frame[c].dtype == object})


def test_entity_keys_follow_the_values_not_their_storage(store_and_entities) -> None:
    _settings, _store, entities = store_and_entities
    rows = entities.head(200).copy()
    rows.loc[3, "tailnum"] = None
    keys = pit_cache.entity_keys(rows)
    assert keys.dtype == np.uint64 and len(set(keys)) == len(rows)
    np.testing.assert_array_equal(pit_cache.entity_keys(_arrow_strings(rows)), keys)
    np.testing.assert_array_equal(pit_cache.entity_keys(rows.astype({"tailnum": "string[python]"})), keys)
    np.testing.assert_array_equal(pit_cache.entity_keys(rows.iloc[::-1]), keys[::-1])  # one key per row

    later = rows.loc[0, "event_timestamp"] + pd.Timedelta(minutes=1)
    for column, value in [
        ("flight_id", "another flight"), ("tailnum", "N0"), ("origin_hour", "EWR-00"), ("carrier", "ZZ"),
        ("route", "EWR-ZZZ"), ("origin_utc_hour", "EWR-2013-01-01T00"), ("event_timestamp", later),
    ]:  # fmt: skip
        changed = rows.copy()
        changed.loc[0, column] = value
        for frame in (changed, _arrow_strings(changed)):
            moved = pit_cache.entity_keys(frame)
            assert moved[0] != keys[0], column
            np.testing.assert_array_equal(moved[1:], keys[1:])
    known = rows.copy()
    known.loc[3, "tailnum"] = "N0"
    assert pit_cache.entity_keys(known)[3] != keys[3]  # a null key is not any value


def test_string_storage_does_not_change_what_is_cached(store_and_entities, tmp_path, feast_calls) -> None:
    _settings, store, entities = store_and_entities
    cache = tmp_path / "cache"
    expected = historical_features(store, entities)

    arrow = cached_historical_features(store, _arrow_strings(entities), cache)  # Feast asked with them
    assert arrow["flight_id"].dtype == "string[pyarrow]"
    pd.testing.assert_frame_equal(arrow[feature_names()], expected[feature_names()], check_dtype=False)
    objects = cached_historical_features(store, entities, cache)
    assert feast_calls == [len(entities)]  # the object-typed frame is served from the same files
    pd.testing.assert_frame_equal(objects, expected, check_dtype=False)


def test_a_key_of_another_flight_is_never_served(
    store_and_entities, tmp_path, feast_calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings, store, entities = store_and_entities
    cache = tmp_path / "cache"
    first = entities.iloc[:100].reset_index(drop=True)
    cached_historical_features(store, first, cache)
    # Other flights whose keys collide with the cached ones (64-bit hashes, as if equal by chance).
    others = entities.iloc[100:200].reset_index(drop=True).assign(month_key=first["month_key"])
    real = pit_cache.entity_keys
    monkeypatch.setattr(pit_cache, "entity_keys", lambda rows: real(first))
    out = cached_historical_features(store, others, cache)
    assert feast_calls == [100, 100]
    pd.testing.assert_frame_equal(out, historical_features(store, others), check_dtype=False)

    # Both flights of each colliding key are now in the files: neither is served by that key.
    monkeypatch.setattr(pit_cache, "entity_keys", real)
    again = cached_historical_features(store, first, cache)
    assert feast_calls == [100, 100, 100]
    pd.testing.assert_frame_equal(again, historical_features(store, first), check_dtype=False)
