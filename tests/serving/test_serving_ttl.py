"""Scenario 9 of docs/reliability.md: a value older than its feature view's ttl is missing online (default,
``degraded: true``), on the SQLite and the Redis online store, through ``hybridops serve`` in a process of its
own. Feast's online store returns such values as present; the service applies the views' ttl itself, so its
answer equals the offline (point-in-time, ttl-bounded) features' score at the same departure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from serving_support import RedisServer, World, feast_online_rows, redis_settings, service_process

from hybridops.features.keys import origin_hour_key, origin_slot_key, origin_utc_hour_key
from hybridops.features.request import with_request_features
from hybridops.features.store import feature_store, historical_features, load_definitions_module
from hybridops.inference.batch import score
from hybridops.serving.features import entity_row
from hybridops.settings import Settings

module = load_definitions_module()
TTL = module.VIEW_TTL
# January 2013 is materialized: on 4 February the daily statistics (ttl 2 days) are older than their ttl,
# the plane profile (ttl 0: never expires) is not.
LATE = pd.Timestamp("2013-02-04T16:00:00")
FLIGHT = {"carrier": "UA", "flight": 1, "origin": "EWR", "dest": "IAH", "tailnum": "N1"}
EXPIRED = ("carrier_delay_stats", "route_delay_stats", "origin_hour_delay_stats")


def _offline_score(settings: Settings, booster, sched_local: pd.Timestamp) -> float:
    sched_utc = sched_local.tz_localize("America/New_York").tz_convert("UTC").tz_localize(None)
    as_of = sched_utc - pd.Timedelta(minutes=settings.model.horizon_minutes)
    entity_df = pd.DataFrame(
        {
            "flight_id": ["f0"],
            "origin": ["EWR"],
            "carrier": ["UA"],
            "route": ["EWR-IAH"],
            "tailnum": ["N1"],
            "origin_hour": [origin_hour_key("EWR", sched_local.to_pydatetime())],
            "origin_utc_hour": [origin_utc_hour_key("EWR", sched_utc.to_pydatetime())],
            "origin_slot": [origin_slot_key("EWR", sched_utc.to_pydatetime())],
            "event_timestamp": [as_of],
            "dest": ["IAH"],
            "sched_dep_utc": [sched_utc],
        }
    )
    offline = with_request_features(historical_features(feature_store(settings), entity_df))
    return float(score(booster, offline)[0])


def _check(settings: Settings, world: World, log: Path) -> None:
    # the store itself still holds the stale values and Feast's online_read returns them as present
    row = entity_row("UA", "EWR", "IAH", "N1", LATE.to_pydatetime())
    feast = feast_online_rows(settings, [row])
    views = list(module.VIEW_FEATURES)
    for view in EXPIRED:
        assert not feast["missing"][0, views.index(view)], view
    with service_process(settings, log) as service:
        body = requests.post(
            f"{service.url}/predict", json={"flights": [dict(FLIGHT, sched_dep=LATE.isoformat())]}, timeout=30
        ).json()
        (prediction,) = body["predictions"]
        ages = prediction["feature_age_seconds"]
        for view in EXPIRED:
            assert ages[view] is None, (view, ages)
        assert ages["plane_profile"] is not None and TTL["plane_profile"].total_seconds() == 0
        assert prediction["degraded"] is True and body["degraded"] is True
        # the same values inside their ttl are served as present
        fresh = requests.post(
            f"{service.url}/predict",
            json={"flights": [dict(FLIGHT, sched_dep="2013-01-31T16:00:00")]},
            timeout=30,
        ).json()["predictions"][0]
        for view in EXPIRED:
            age = fresh["feature_age_seconds"][view]
            assert age is not None and 0 <= age <= TTL[view].total_seconds()
        metrics = requests.get(f"{service.url}/metrics", timeout=5).text
        for view in EXPIRED:
            assert f'hybridops_serving_expired_features_total{{view="{view}"}} 1.0' in metrics
        version = body["model"]["version"]
        # The horizon: at 01:00 local on 31 January the flight is predicted at 23:00 on the 30th (two hours
        # before); the daily statistics the store holds are stamped at 00:00 on the 31st, after that
        # instant: not used, although Feast's online read returns them.
        early = requests.post(
            f"{service.url}/predict",
            json={"flights": [dict(FLIGHT, sched_dep="2013-01-31T01:00:00")]},
            timeout=30,
        ).json()["predictions"][0]
        for view in EXPIRED:
            assert early["feature_age_seconds"][view] is None, (view, early["feature_age_seconds"])
        assert early["degraded"] is True
    expected = _offline_score(settings, world.boosters[version], LATE)
    np.testing.assert_allclose(prediction["delay_probability"], expected, rtol=1e-12)


def test_values_past_their_ttl_are_missing_on_sqlite(world: World, tmp_path: Path) -> None:
    _check(world.settings, world, tmp_path / "serve.log")


def test_values_past_their_ttl_are_missing_on_redis(world: World, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        _check(redis_settings(world, redis), world, tmp_path / "serve.log")
    finally:
        redis.stop()


@pytest.fixture(autouse=True)
def _ttls_are_the_repo_s() -> None:
    """The test relies on the Feast repo's ttls; fail loudly when they change."""
    assert TTL["carrier_delay_stats"].days == 2 and TTL["origin_weather"].total_seconds() == 3 * 3600
