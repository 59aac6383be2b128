"""Completeness per key and period, and the reconciliation rows read = valid + quarantined."""

from __future__ import annotations

import pandas as pd
import pytest

from hybridops.ingest.landing import LandedFile
from hybridops.ingest.parse import file_values, parse_table
from hybridops.quality.completeness import completeness_check
from hybridops.quality.reconcile import reconcile
from hybridops.quality.validate import References, declared_checks, validate_table
from hybridops.settings import QualitySettings


def _good(real_landed: dict[str, LandedFile], table: str, month: str) -> pd.DataFrame:
    parsed = parse_table(real_landed[table], month)
    return validate_table(table, parsed, References(), QualitySettings(), "t").good


@pytest.mark.parametrize("month", ["2013-01", "2013-11", "2013-12"])
def test_real_months_are_complete(real_landed: dict[str, LandedFile], month: str) -> None:
    origins = file_values(real_landed["weather"], "origin")
    for table in ("weather", "flights"):
        outcome = completeness_check(
            table, _good(real_landed, table, month), month, "f.csv", QualitySettings(), origins
        )
        assert outcome is not None and outcome.passed, outcome.message


def test_an_airports_missing_month_of_weather_blocks(real_landed: dict[str, LandedFile]) -> None:
    good = _good(real_landed, "weather", "2013-03")
    without_lga = good[good["origin"] != "LGA"]
    outcome = completeness_check(
        "weather", without_lga, "2013-03", "/src/weather.csv", QualitySettings(), {"EWR", "JFK", "LGA"}
    )
    assert outcome is not None and not outcome.passed and outcome.blocking and outcome.severity == "ERROR"
    assert "/src/weather.csv: LGA has 0 of 744 hours of weather in 2013-03" in outcome.message


def test_weather_gap_days_and_warn_severity(real_landed: dict[str, LandedFile]) -> None:
    good = _good(real_landed, "weather", "2013-03")
    holes = good[~((good["origin"] == "JFK") & good["day"].isin([3, 4]) & (good["hour"] < 14))]
    settings = QualitySettings(completeness_severity="warn")
    outcome = completeness_check("weather", holes, "2013-03", "w.csv", settings, {"EWR", "JFK", "LGA"})
    assert outcome is not None and not outcome.passed and not outcome.blocking and outcome.severity == "WARN"
    assert "JFK has 2 day(s) under 12 hours of weather (allowed 1): 2013-03-03, 2013-03-04" in outcome.message


def test_a_day_without_or_with_too_few_flights_fails(real_landed: dict[str, LandedFile]) -> None:
    good = _good(real_landed, "flights", "2013-02")
    thin = good[(good["day"] != 14) & ~((good["day"] == 20) & (good.index % 4 != 0))]
    outcome = completeness_check("flights", thin, "2013-02", "/src/flights.csv", QualitySettings())
    assert outcome is not None and not outcome.passed and outcome.blocking
    assert outcome.message.startswith("/src/flights.csv: 2 day(s) of 2013-02 with no or too few flights")
    assert "2013-02-14 (0)" in outcome.message and "2013-02-20 (" in outcome.message


def test_reconcile_names_the_file_and_the_numbers() -> None:
    ok = reconcile(
        "/src/flights.csv", "2013-01", 100, 97, 3, file_rows=120, in_loaded_months=118, out_of_range=2
    )
    assert ok.passed and ok.blocking
    assert ok.message.startswith("/src/flights.csv: 100 rows read for 2013-01 = 97 valid + 3 quarantined")
    lost = reconcile("/src/flights.csv", "2013-01", 100, 96, 3)
    assert not lost.passed and lost.severity == "ERROR"
    assert (
        "/src/flights.csv: 100 rows read for 2013-01 but 96 valid + 3 quarantined (+1 unaccounted)"
        in lost.message
    )
    whole = reconcile("/src/w.csv", "2013-01", 5, 5, 0, file_rows=10, in_loaded_months=8, out_of_range=1)
    assert not whole.passed and "the file has 10 rows but 8 are in loaded months and 1" in whole.message


def test_new_checks_are_declared_blocking() -> None:
    flights = dict(declared_checks("flights"))
    assert flights["rows_reconciled"] and flights["daily_flights_complete"]
    assert dict(declared_checks("weather"))["weather_hours_complete"]
    assert dict(declared_checks("planes"))["rows_reconciled"] and "weather_hours_complete" not in dict(
        declared_checks("planes")
    )
    assert not flights["truncated"] and not flights["control_bytes"]


def test_ratio_message_names_the_file(parse_rows) -> None:  # type: ignore[no-untyped-def]
    from quality_support import WEATHER_HEADER, WEATHER_ROW

    parsed = parse_rows(
        "weather",
        WEATHER_HEADER,
        WEATHER_ROW.replace(",39.02,", ",warm,"),
        WEATHER_ROW.replace(",1,39", ",2,39"),
    )
    result = validate_table("weather", parsed, References(), QualitySettings(), "t")
    ratio = next(c for c in result.checks if c.name == "bad_row_ratio")
    assert not ratio.passed and ratio.message.startswith(parsed.source_file + ": 2 of 2 rows quarantined")
