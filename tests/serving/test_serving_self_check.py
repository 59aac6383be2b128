"""The start-up self-check: the service's store readers and fast predictor against Feast's
``get_online_features`` and LightGBM's ``Booster.predict`` on probe rows, on a real SQLite store and a real
Redis, and the service refusing readiness when they disagree."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import requests
from serving_support import RedisServer, World, redis_settings, running_server

from hybridops.features.store import ENTITY_COLUMNS, feature_store
from hybridops.serving import self_check
from hybridops.serving.booster_predict import BoosterPredictor
from hybridops.serving.features import OnlineFeatureReader
from hybridops.serving.online_rows import ViewRows
from hybridops.serving.self_check import SelfCheckError, check_predictor, check_reader, check_store


class _Shifted:
    """A store reader that reads one feature into its neighbour's place (a layout it misreads)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def fill(self, keys: Sequence[Sequence[bytes]], out: Sequence[ViewRows]) -> None:
        self.inner.fill(keys, out)
        for rows in out:
            for values in rows.values:
                values[:] = values[1:] + values[:1]

    def sample_keys(self, limit: int) -> list[list[str]]:
        return self.inner.sample_keys(limit)

    def close(self) -> None:
        self.inner.close()


class ShiftedReader(OnlineFeatureReader):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._store = _Shifted(self._store)


class OffByOneTree(BoosterPredictor):
    """A fast predictor that uses one tree fewer than Booster.predict (a changed C API argument)."""

    def __init__(self, booster: lgb.Booster) -> None:
        super().__init__(booster)
        self._iterations = booster.num_trees() - 1


def _probe_rows(settings) -> tuple[OnlineFeatureReader, object, list[dict[str, str | None]]]:
    store = feature_store(settings)
    reader = OnlineFeatureReader(settings, store)
    return reader, store, self_check.probe_entity_rows(reader, ENTITY_COLUMNS)


def test_sqlite_reader_agrees_with_feast_on_probe_entities(world: World) -> None:
    reader, store, rows = _probe_rows(world.settings)
    try:
        # keys the store holds for every view (the newest ones) and one unknown key
        assert len(rows) == self_check.KEYS_PER_VIEW + 1
        assert rows[-1] == dict.fromkeys(ENTITY_COLUMNS, self_check.MISSING_KEY)
        batch = reader.read(rows)
        assert not batch.missing[0].any() and batch.missing[-1].all()
        assert check_reader(reader, store, rows) == len(rows) * len(reader.names)
        assert check_store(reader, store) == len(rows) * len(reader.names)
    finally:
        reader.close()


def test_a_reader_that_misreads_the_layout_is_caught(world: World) -> None:
    store = feature_store(world.settings)
    reader = ShiftedReader(world.settings, store)
    try:
        with pytest.raises(SelfCheckError, match="disagrees with Feast's get_online_features"):
            check_store(reader, store)
    finally:
        reader.close()


def test_redis_reader_agrees_with_feast(world: World, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        settings = redis_settings(world, redis)
        reader, store, rows = _probe_rows(settings)
        try:
            assert not reader.read(rows).missing[0].any()
            assert check_store(reader, store) == len(rows) * len(reader.names)
        finally:
            reader.close()
        shifted = ShiftedReader(settings, store)
        try:
            with pytest.raises(SelfCheckError, match="reader of the redis online store"):
                check_store(shifted, store)
        finally:
            shifted.close()
    finally:
        redis.stop()


def test_predictor_agrees_with_booster_predict(world: World) -> None:
    for booster in world.boosters.values():
        matrix = self_check.probe_matrix(booster)
        assert np.isnan(matrix[0]).all() and np.isnan(matrix).any() and not np.isnan(matrix[1]).any()
        # the probe rows reach many leaves: their predictions differ
        assert len(np.unique(booster.predict(matrix))) > len(matrix) // 2
        assert check_predictor(BoosterPredictor(booster), booster) == len(matrix)
        with pytest.raises(SelfCheckError, match=r"disagrees with Booster\.predict"):
            check_predictor(OffByOneTree(booster), booster)


def test_service_is_not_ready_when_a_fast_path_disagrees(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_server(world.settings) as running:
        assert requests.get(f"{running.url}/readyz", timeout=30).status_code == 200
    monkeypatch.setattr("hybridops.serving.service.OnlineFeatureReader", ShiftedReader)
    with running_server(world.settings) as running:
        response = requests.get(f"{running.url}/readyz", timeout=30)
        assert response.status_code == 503
        assert "online store self-check failed" in response.text
    monkeypatch.undo()
    monkeypatch.setattr("hybridops.serving.model_holder.BoosterPredictor", OffByOneTree)
    with running_server(world.settings) as running:
        response = requests.get(f"{running.url}/readyz", timeout=30)
        assert response.status_code == 503
        assert "disagrees with Booster.predict" in response.json()["problems"][0]
