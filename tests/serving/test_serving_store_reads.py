"""The service's one-round-trip reads are Feast's reads: the same features, event times and missing rows as
Feast's own ``online_read`` on the real SQLite and Redis stores; its entity keys are Feast's serialization
and its predictions the booster's own."""

from __future__ import annotations

import itertools
from datetime import datetime

import lightgbm as lgb
import numpy as np
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from serving_support import RedisServer, World, feast_online_rows, redis_settings

from hybridops.errors import HybridopsError
from hybridops.serving.booster_predict import BoosterPredictor
from hybridops.serving.entity_keys import EntityKeyEncoder
from hybridops.serving.features import OnlineFeatureReader, entity_row
from hybridops.serving.online_sqlite import _bucket


def _rows(world: World) -> list[dict[str, str | None]]:
    """Every carrier, route and plane of the world (and unknown ones) at hours across the day."""
    fct = world.fct
    carriers = [*sorted(fct["carrier"].unique()), "ZZ"]
    routes = [*sorted({(o, d) for o, d in zip(fct["origin"], fct["dest"], strict=True)}), ("LGA", "XXX")]
    tails: list[str | None] = [*sorted(fct["tailnum"].dropna().unique()), "N999", None]
    hours = [datetime(2013, 1, 31, h, 5) for h in (0, 6, 11, 16, 20, 23)]
    return [
        entity_row(c, o, d, t, h) for (c, (o, d), t, h) in itertools.product(carriers, routes, tails, hours)
    ]


def _assert_same(reader: OnlineFeatureReader, expected: dict[str, np.ndarray], rows) -> None:
    batch = reader.read(rows)
    np.testing.assert_array_equal(batch.missing, expected["missing"])
    np.testing.assert_array_equal(batch.matrix, expected["matrix"])  # NaN == NaN here
    np.testing.assert_array_equal(batch.event_ts, expected["event_ts"])


def test_sqlite_reads_equal_feasts_online_read(world: World) -> None:
    rows = _rows(world)
    expected = feast_online_rows(world.settings, rows)
    assert (~expected["missing"]).all(axis=0).sum() == 0  # unknown entities are in the batch
    assert (~expected["missing"]).any(axis=0).all()  # and every view has known ones
    reader = OnlineFeatureReader(world.settings)
    try:
        _assert_same(reader, expected, rows)
        _assert_same(reader, {k: v[:1] for k, v in expected.items()}, rows[:1])  # one flight
        # batches whose key counts are padded to a statement shape (spare placeholders bound to NULL),
        # twice each so the second read reuses a cached statement
        for size in (2, 9, 37, 100, 37, 9):
            picked = slice(None, size * 7, 7)
            _assert_same(reader, {k: v[picked] for k, v in expected.items()}, rows[picked])
    finally:
        reader.close()


def test_sqlite_statement_shapes_pad_at_most_a_quarter() -> None:
    assert [_bucket(n) for n in (0, 1, 8, 9, 11, 16, 17, 97, 128, 129)] == [
        0,
        1,
        8,
        10,
        12,
        16,
        20,
        112,
        128,
        160,
    ]
    assert all(n <= _bucket(n) <= n * 1.25 for n in range(1, 6000))
    assert len({_bucket(n) for n in range(1, 5001)}) < 60  # few shapes for any batch up to max_flights


def test_redis_reads_equal_feasts_online_read(world: World, tmp_path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = redis_settings(world, redis)
        rows = _rows(world)
        expected = feast_online_rows(settings, rows)
        np.testing.assert_array_equal(expected["matrix"], feast_online_rows(world.settings, rows)["matrix"])
        reader = OnlineFeatureReader(settings)
        try:
            _assert_same(reader, expected, rows)
        finally:
            reader.close()
    finally:
        redis.stop()


@pytest.mark.parametrize("join_key", ["origin", "route", "tailnum", "origin_hour"])
def test_entity_keys_are_feasts_serialization(join_key: str) -> None:
    encoder = EntityKeyEncoder(join_key, 3)
    for value in ["EWR", "EWR-IAH", "N14228", "JFK-23", "", "ÅÄÖ-✈", "x" * 300]:
        proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
        assert encoder.encode(value) == serialize_entity_key(proto, entity_key_serialization_version=3)


def test_old_entity_key_versions_are_refused() -> None:
    with pytest.raises(HybridopsError, match="not supported"):
        EntityKeyEncoder("origin", 2)


def test_booster_predictor_equals_booster_predict(world: World) -> None:
    rng = np.random.default_rng(7)
    for booster in world.boosters.values():
        x = rng.normal(20, 10, size=(257, booster.num_feature()))
        x[rng.random(x.shape) < 0.2] = np.nan
        predictor = BoosterPredictor(booster)
        np.testing.assert_array_equal(predictor.predict(x), booster.predict(x, num_threads=1))
        np.testing.assert_array_equal(predictor.predict(x[:1]), booster.predict(x[:1], num_threads=1))
        reloaded = lgb.Booster(model_str=booster.model_to_string())
        np.testing.assert_array_equal(BoosterPredictor(reloaded).predict(x), reloaded.predict(x))
    with pytest.raises(ValueError, match="features"):
        predictor.predict(x[:, :-1])
