"""monthly_volume: a month far below the earlier months fails; the real months pass."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from hybridops.ingest.sources import packaged_source_dir
from hybridops.quality.validate import declared_checks
from hybridops.quality.volume import earlier_month_rows, volume_check
from hybridops.settings import QualitySettings


@pytest.fixture(scope="module")
def monthly_counts() -> dict[str, int]:
    flights = pd.read_csv(packaged_source_dir() / "flights.csv.zip", usecols=["month"])
    return {f"2013-{m:02d}": int(n) for m, n in flights["month"].value_counts().sort_index().items()}


def test_declared_blocking_for_flights_only() -> None:
    assert ("monthly_volume", True) in declared_checks("flights")
    # Under completeness_severity: warn it is declared non-blocking with the completeness checks.
    assert ("monthly_volume", False) in declared_checks("flights", completeness_blocking=False)
    assert not [name for name, _ in declared_checks("weather") if name == "monthly_volume"]
    assert volume_check("weather", 10, "2013-02", "weather.csv", {"2013-01": 100}, QualitySettings()) is None


def test_every_real_month_passes_against_the_months_before(monthly_counts: dict[str, int]) -> None:
    settings = QualitySettings()
    months = sorted(monthly_counts)
    for i, month in enumerate(months):
        earlier = {m: monthly_counts[m] for m in months[max(0, i - 3) : i]}
        outcome = volume_check("flights", monthly_counts[month], month, "flights.csv", earlier, settings)
        assert outcome is not None and outcome.passed, outcome
    assert "no earlier month" in volume_check("flights", 5, "2013-01", "flights.csv", {}, settings).message


def test_half_a_month_fails_naming_the_file_and_the_numbers(monthly_counts: dict[str, int]) -> None:
    earlier = {m: monthly_counts[m] for m in ("2013-01", "2013-02", "2013-03")}
    half = monthly_counts["2013-04"] // 2
    outcome = volume_check("flights", half, "2013-04", "/src/flights.csv", earlier, QualitySettings())
    assert outcome is not None and not outcome.passed
    assert (outcome.severity, outcome.blocking) == ("ERROR", True)
    assert outcome.message.startswith(f"/src/flights.csv: {half} rows for 2013-04, 52% of the median")
    assert "under the 60% limit" in outcome.message and "2013-02: 24951" in outcome.message
    assert outcome.metadata["reference_rows"] == 27004.0  # the median of 27,004, 24,951 and 28,834
    warn = volume_check(
        "flights", half, "2013-04", "f", earlier, QualitySettings(completeness_severity="warn")
    )
    assert warn is not None and (warn.passed, warn.severity, warn.blocking) == (False, "WARN", False)


def test_earlier_months_come_from_the_warehouse(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert earlier_month_rows(con, "flights", "2013-05", 3) == {}
        con.execute(
            "create table flights as select * from (values "
            "('2013-01'), ('2013-02'), ('2013-02'), ('2013-03'), ('2013-04'), ('2013-04'), ('2013-05')"
            ") t(month_key)"
        )
        assert earlier_month_rows(con, "flights", "2013-05", 3) == {"2013-02": 2, "2013-03": 1, "2013-04": 2}
        assert earlier_month_rows(con, "flights", "2013-01", 3) == {}
