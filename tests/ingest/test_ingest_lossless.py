"""Nothing read is lost at parse time: truncation, control bytes and rows outside every partition."""

from collections.abc import Callable
from pathlib import Path

import pytest
from ingest_support import FLIGHT_ROW, FLIGHTS_HEADER, WEATHER_HEADER, WEATHER_ROW

from hybridops.ingest.landing import land_file
from hybridops.ingest.parse import ParseResult, parse_outside, parse_table

Parse = Callable[..., ParseResult]


def lines(header: str, *rows: str) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_complete_last_record_without_line_break_is_quarantined_as_truncated(parse_text: Parse) -> None:
    # The cut landed right after a typable value: every field is there, but the terminator is not.
    text = lines(WEATHER_HEADER, WEATHER_ROW) + WEATHER_ROW.replace(",1,39.02", ",2,39.02")
    result = parse_text("weather", text)
    assert len(result.frame) == 1 and result.rows_read == 2
    reject = result.rejects.iloc[0]
    assert reject["check_name"] == "truncated" and reject["source_line"] == 3
    assert "weather.csv" in reject["reason"] and "line 3" in reject["reason"]


def test_short_last_record_with_line_break_is_truncated(parse_text: Parse) -> None:
    text = lines(WEATHER_HEADER, WEATHER_ROW, WEATHER_ROW[:30])
    result = parse_text("weather", text)
    reject = result.rejects.iloc[0]
    assert reject["check_name"] == "truncated" and "last record (line 3) has" in reject["reason"]


def test_a_short_record_mid_file_stays_a_field_count_reject(parse_text: Parse) -> None:
    text = lines(WEATHER_HEADER, WEATHER_ROW[:30], WEATHER_ROW.replace(",1,39.02", ",2,39.02"))
    result = parse_text("weather", text)
    assert result.rejects["check_name"].tolist() == ["field_count"] and len(result.frame) == 1


@pytest.mark.parametrize("byte", [b"\x00", b"\x07", b"\x0b", b"\x1f", b"\x7f"])
def test_control_byte_in_a_decimal_quarantines_the_row(parse_text: Parse, byte: bytes) -> None:
    damaged = WEATHER_ROW.replace("39.02", "39.0{}2").encode().replace(b"{}", byte)
    second = WEATHER_ROW.replace(",1,39.02", ",2,39.02").encode()
    text = lines(WEATHER_HEADER).encode() + damaged + b"\n" + second + b"\n"
    result = parse_text("weather", text)
    assert len(result.frame) == 1 and result.frame["hour"].tolist() == [2]
    reject = result.rejects.iloc[0]
    assert "control_bytes" in reject["check_name"].split(",") and reject["source_line"] == 2
    assert f"control byte 0x{byte[0]:02x} in temp on line 2" in reject["reason"]


@pytest.mark.parametrize("value", ["0x1F", "0XFF", "0xFFFFFFFFFFFFFFFF"])
def test_a_hexadecimal_integer_is_a_bad_value_not_a_number(parse_text: Parse, value: str) -> None:
    """Arrow's cast reads hexadecimal (0x1F as 31, 0xFFFFFFFFFFFFFFFF as -1): the sources spell integers in
    decimal, so the row is quarantined with the value as written, and the clean rows beside it keep theirs."""
    damaged = FLIGHT_ROW.replace(",1400,", f",{value},")
    result = parse_text("flights", lines(FLIGHTS_HEADER, damaged, FLIGHT_ROW.replace(",1545,", ",1546,")))
    assert result.frame["distance"].tolist() == [1400] and result.frame["flight"].tolist() == [1546]
    reject = result.rejects.iloc[0]
    assert reject["check_name"] == "type" and reject["source_line"] == 2
    assert f"distance='{value}' is not an integer" in reject["reason"]


def test_control_byte_in_a_text_field_is_caught_too(parse_text: Parse) -> None:
    damaged = FLIGHT_ROW.replace("N14228", "N14\x0128")
    result = parse_text("flights", lines(FLIGHTS_HEADER, damaged, FLIGHT_ROW.replace(",1545,", ",1546,")))
    assert result.rejects["check_name"].tolist() == ["control_bytes"]
    assert "in tailnum on line 2" in result.rejects.iloc[0]["reason"] and len(result.frame) == 1


def test_rows_outside_the_loaded_months_are_quarantined_not_dropped(tmp_path: Path) -> None:
    may_2014 = FLIGHT_ROW.replace("2013,1,1,", "2014,5,1,").replace("2013-01-01T10", "2014-05-01T09")
    bad_2014 = may_2014.replace(",517,", ",5x7,")
    no_month = FLIGHT_ROW.replace("2013,1,1,", "x,1,1,").replace("2013-01-01T10:00:00Z", "never")
    text = lines(FLIGHTS_HEADER, FLIGHT_ROW, may_2014, bad_2014, no_month)
    src = tmp_path / "flights.csv"
    src.write_text(text)
    landed = land_file(src, "flights", tmp_path / "landing")
    january = parse_table(landed, "2013-01")
    bucket = parse_outside(landed, ["2013-01"])
    assert january.rows_read + bucket.rows_read == 4
    assert bucket.rejects["source_line"].tolist() == [3, 4, 5]
    assert set(bucket.rejects["month_key"]) == {"out-of-range"}
    assert bucket.rejects["check_name"].tolist() == ["out_of_range", "out_of_range,type", "out_of_range,type"]
    assert (
        "month 2014-05 is not a loaded partition (loaded: 2013-01..2013-01)"
        in bucket.rejects.iloc[0]["reason"]
    )
    # Once 2014-05 is loaded, its rows leave the bucket: never counted twice.
    assert parse_outside(landed, ["2013-01", "2014-05"]).rejects["source_line"].tolist() == [5]
