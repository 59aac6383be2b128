"""One test per rule on hand-made rows; expected counts written by hand."""

from collections.abc import Callable

import pandas as pd
from quality_support import FLIGHT_ROW, FLIGHTS_HEADER, WEATHER_HEADER, WEATHER_ROW

from hybridops.ingest.parse import ParseResult
from hybridops.quality.quarantine import QUARANTINE_COLUMNS
from hybridops.quality.validate import CheckOutcome, References, ValidationResult, validate_table
from hybridops.settings import QualitySettings

Rows = Callable[..., ParseResult]
LOOSE = QualitySettings(max_bad_row_ratio=1.0)


def check(result: ValidationResult, name: str) -> CheckOutcome:
    return next(c for c in result.checks if c.name == name)


def flight(**changes: str) -> str:
    values = dict(zip(FLIGHTS_HEADER.split(","), FLIGHT_ROW.split(","), strict=True))
    values.update(changes)
    return ",".join(values.values())


def weather(**changes: str) -> str:
    values = dict(zip(WEATHER_HEADER.split(","), WEATHER_ROW.split(","), strict=True))
    values.update(changes)
    return ",".join(values.values())


def run_flights(parse_rows: Rows, refs: References, *rows: str, settings: QualitySettings = LOOSE):
    return validate_table("flights", parse_rows("flights", FLIGHTS_HEADER, *rows), refs, settings, "r1")


def run_weather(parse_rows: Rows, *rows: str, settings: QualitySettings = LOOSE):
    return validate_table(
        "weather", parse_rows("weather", WEATHER_HEADER, *rows), References(), settings, "r1"
    )


def test_clean_rows_pass_everything(parse_rows: Rows, refs: References) -> None:
    result = run_flights(parse_rows, refs, flight(), flight(flight="2", dep_time="NA", dep_delay="NA"))
    assert len(result.good) == 2 and len(result.quarantine) == 0 and not result.blocked
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)
    assert all(c.passed for c in result.checks)
    assert {c.name for c in result.checks} >= {
        "file_readable_and_schema_valid",
        "bad_row_ratio",
        "type",
        "range",
        "required",
        "duplicate_key",
        "timestamp",
        "carrier_in_airlines",
        "origin_in_airports",
        "tailnum_in_planes",
        "dest_in_airports",
    }


def test_range_rule(parse_rows: Rows) -> None:
    result = run_weather(
        parse_rows,
        weather(),
        weather(hour="2", time_hour="2013-01-01T07:00:00Z", humid="101"),
        weather(hour="3", time_hour="2013-01-01T08:00:00Z", wind_speed="1048.36"),
        weather(hour="4", time_hour="2013-01-01T09:00:00Z", pressure="NA"),  # null is not a range failure
    )
    assert len(result.good) == 2
    assert result.quarantine["source_line"].tolist() == [3, 4]
    assert result.quarantine["check_name"].tolist() == ["range", "range"]
    assert (
        "humid <= 100" in result.quarantine["reason"][0] and "humid=101.0" in result.quarantine["reason"][0]
    )
    assert "wind_speed=1048.36" in result.quarantine["reason"][1]
    assert check(result, "range").metadata["rows"] == 2 and not check(result, "range").passed
    assert not check(result, "range").blocking and check(result, "range").severity == "WARN"


def test_delay_and_clock_ranges_follow_settings(parse_rows: Rows, refs: References) -> None:
    rows = (flight(dep_delay="1500"), flight(flight="2", sched_arr_time="1275"))
    result = run_flights(parse_rows, refs, *rows)
    assert result.quarantine["check_name"].tolist() == ["range", "range"]
    assert "sched_arr_time minutes" in result.quarantine["reason"][1]
    relaxed = QualitySettings(max_bad_row_ratio=1.0, max_abs_delay_minutes=2000)
    assert len(run_flights(parse_rows, refs, *rows, settings=relaxed).quarantine) == 1


def test_distance_and_air_time_have_physical_ceilings(parse_rows: Rows, refs: References) -> None:
    """Half a great circle (12,451 miles) and a day in the air: the longest real flights pass (JFK to
    Honolulu, 4,983 miles, 11 hours), a corrupt magnitude is quarantined instead of feeding the features."""
    longest = flight(distance="4983", air_time="691")
    result = run_flights(
        parse_rows,
        refs,
        longest,
        flight(flight="2", distance="99999999"),
        flight(flight="3", air_time="5000"),
        flight(flight="4", distance="0"),
    )
    assert result.good["_source_line"].tolist() == [2]
    assert result.quarantine["check_name"].tolist() == ["range", "range", "range"]
    reasons = result.quarantine["reason"].tolist()
    assert "0 < distance <= 12451 (got distance=99999999)" in reasons[0]
    assert "0 < air_time <= 1440 (got air_time=5000)" in reasons[1]
    assert "0 < distance <= 12451 (got distance=0)" in reasons[2]


def test_required_rule(parse_rows: Rows, refs: References) -> None:
    result = run_flights(parse_rows, refs, flight(carrier="NA"), flight(flight="2", tailnum="NA"))
    assert result.quarantine["check_name"].tolist() == ["required"]
    assert "carrier is missing" in result.quarantine["reason"][0]
    assert len(result.good) == 1  # a missing tailnum is valid


def test_duplicate_key_keeps_first(parse_rows: Rows, refs: References) -> None:
    result = run_flights(parse_rows, refs, flight(), flight(flight="2"), flight(dep_time="518"), flight())
    assert len(result.good) == 2 and result.good["_source_line"].tolist() == [2, 3]
    assert result.quarantine["source_line"].tolist() == [4, 5]
    assert set(result.quarantine["check_name"]) == {"duplicate_key"}
    assert "already seen on line 2" in result.quarantine["reason"][0]


def test_weather_key_is_origin_and_utc_hour(parse_rows: Rows) -> None:
    # DST fall-back: local 1 am on 3 Nov happens twice; both readings are consistent and distinct.
    first = weather(month="11", day="3", hour="1", time_hour="2013-11-03T05:00:00Z")
    second = weather(month="11", day="3", hour="1", time_hour="2013-11-03T06:00:00Z")
    result = run_weather(parse_rows, first, second, second)
    assert len(result.good) == 2
    assert result.quarantine["check_name"].tolist() == ["duplicate_key"]


def test_timestamp_rule(parse_rows: Rows, refs: References) -> None:
    result = run_flights(
        parse_rows,
        refs,
        flight(time_hour="2013-01-01T05:00:00Z"),  # local time written as UTC
        flight(flight="2", minute="16"),  # minute disagrees with sched_dep_time
        flight(flight="3", month="2", day="30", time_hour="2013-03-02T10:00:00Z"),  # no such date
        flight(flight="4"),
    )
    assert result.quarantine["check_name"].tolist() == ["timestamp"] * 3
    assert "time_hour (UTC) equals local" in result.quarantine["reason"][0]
    assert "minute = sched_dep_time % 100" in result.quarantine["reason"][1]
    assert check(result, "timestamp").metadata["rows"] == 3


def test_references(parse_rows: Rows, refs: References) -> None:
    rows = (
        flight(carrier="ZZ"),
        flight(flight="2", origin="XXX"),
        flight(flight="3", dest="BQN", tailnum="N9"),
    )
    result = run_flights(parse_rows, refs, *rows)
    assert result.quarantine["check_name"].tolist() == ["carrier_in_airlines", "origin_in_airports"]
    assert "carrier='ZZ' is not in airlines" in result.quarantine["reason"][0]
    assert len(result.good) == 1
    dest = check(result, "dest_in_airports")
    assert not dest.passed and not dest.blocking and dest.metadata["unknown_dests"] == "BQN"
    tail = check(result, "tailnum_in_planes")
    assert not tail.passed and tail.metadata["unknown"] == 1 and tail.severity == "WARN"
    skipped = run_flights(parse_rows, References(), *rows)
    assert len(skipped.quarantine) == 0
    assert check(skipped, "carrier_in_airlines").message.startswith("skipped")
    assert check(skipped, "tailnum_in_planes").passed


def test_several_failures_make_one_quarantine_row(parse_rows: Rows, refs: References) -> None:
    result = run_flights(parse_rows, refs, flight(carrier="ZZ", distance="0", minute="16"))
    assert len(result.quarantine) == 1
    row = result.quarantine.iloc[0]
    assert row["check_name"] == "range,timestamp,carrier_in_airlines"
    assert row["reason"].count(";") == 2
    assert row["run_id"] == "r1" and row["month_key"] == "2013-01" and row["source_line"] == 2
    for name in ("range", "timestamp", "carrier_in_airlines"):
        assert check(result, name).metadata["rows"] == 1


def test_type_rejects_join_quarantine(parse_rows: Rows, refs: References) -> None:
    result = run_flights(parse_rows, refs, flight(arr_delay="late"), flight(flight="2"))
    assert result.quarantine["check_name"].tolist() == ["type"]
    assert result.quarantine["run_id"].tolist() == ["r1"]
    assert not pd.isna(result.quarantine["quarantined_at"][0])


def test_bad_row_ratio_blocks(parse_rows: Rows) -> None:
    rows = [weather(hour=str(h), time_hour=f"2013-01-01T{h + 5:02d}:00:00Z") for h in range(1, 11)]
    rows[3] = rows[3].replace(",59.37,", ",159.37,")
    strict = run_weather(parse_rows, *rows, settings=QualitySettings(max_bad_row_ratio=0.05))
    ratio = check(strict, "bad_row_ratio")
    assert not ratio.passed and ratio.blocking and strict.blocked
    assert ratio.metadata["quarantined"] == 1 and ratio.metadata["rows_read"] == 10
    assert ratio.metadata["ratio"] == 0.1
    assert check(
        run_weather(parse_rows, *rows, settings=QualitySettings(max_bad_row_ratio=0.1)), "bad_row_ratio"
    ).passed


def test_critical_problems_block_and_skip_the_rest(parse_rows: Rows, refs: References) -> None:
    parsed = parse_rows("flights", FLIGHTS_HEADER.replace("carrier", "airline"), FLIGHT_ROW)
    result = validate_table("flights", parsed, refs, LOOSE, "r1")
    assert result.blocked and len(result.good) == 0 and len(result.quarantine) == 0
    assert [c.name for c in result.checks] == ["file_readable_and_schema_valid"]
    assert "missing columns carrier" in result.checks[0].message


def test_dimension_quarantine_is_static(parse_rows: Rows) -> None:
    parsed = parse_rows(
        "planes",
        "tailnum,year,type,manufacturer,model,engines,seats,speed,engine",
        "N1,2004,Fixed wing,EMBRAER,E145,2,55,NA,Turbo-fan",
        "N2,1850,Fixed wing,EMBRAER,E145,2,0,NA,Turbo-fan",
    )
    result = validate_table("planes", parsed, References(), LOOSE, "r1")
    assert result.quarantine["month_key"].tolist() == ["static"]
    assert "year=1850" in result.quarantine["reason"][0] and "seats > 0" in result.quarantine["reason"][0]
