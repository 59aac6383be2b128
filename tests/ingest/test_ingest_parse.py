import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from ingest_support import FLIGHT_ROW, FLIGHTS_HEADER, WEATHER_HEADER, WEATHER_ROW

import hybridops.ingest.parse as parse_module
from hybridops.ingest.landing import land_file
from hybridops.ingest.parse import COLUMN_TYPES, ParseResult, parse_table
from hybridops.ingest.sources import source_file

Parse = Callable[..., ParseResult]


def lines(header: str, *rows: str) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_types_and_lineage(parse_text: Parse) -> None:
    result = parse_text("weather", lines(WEATHER_HEADER, WEATHER_ROW, WEATHER_ROW.replace(",1,39", ",2,40")))
    frame = result.frame
    assert result.critical == [] and len(result.rejects) == 0 and result.rows_read == 2
    for col, kind in COLUMN_TYPES["weather"].items():
        assert str(frame[col].dtype) == ("datetime64[ns]" if kind == "timestamp" else kind), col
    assert frame["_source_line"].tolist() == [2, 3]
    assert frame["_source_file"].iloc[0].endswith("weather.csv")
    assert frame["month_key"].tolist() == ["2013-01", "2013-01"]
    assert frame["time_hour"].iloc[0] == pd.Timestamp("2013-01-01 06:00:00")
    assert pd.isna(frame["wind_gust"].iloc[0])  # NA is null


def test_non_numeric_value_is_a_type_reject(parse_text: Parse) -> None:
    bad = WEATHER_ROW.replace("39.02", "warm")
    result = parse_text(
        "weather", lines(WEATHER_HEADER, WEATHER_ROW, bad, WEATHER_ROW.replace(",1,39", ",2,39"))
    )
    assert len(result.frame) == 2 and result.rows_read == 3
    reject = result.rejects.iloc[0]
    assert reject["check_name"] == "type" and reject["source_line"] == 3
    assert "temp='warm'" in reject["reason"]
    assert json.loads(reject["record_json"])["temp"] == "warm"
    assert reject["month_key"] == "2013-01"


def test_fractional_integer_and_bad_timestamp_are_rejected(parse_text: Parse) -> None:
    row = FLIGHT_ROW.replace(",227,", ",22.5,").replace("2013-01-01T10:00:00Z", "yesterday")
    result = parse_text("flights", lines(FLIGHTS_HEADER, FLIGHT_ROW, row))
    assert len(result.frame) == 1
    reason = result.rejects.iloc[0]["reason"]
    assert "air_time='22.5'" in reason and "time_hour='yesterday'" in reason


def test_month_filter_and_unparseable_month_goes_to_rejects(parse_text: Parse) -> None:
    feb = FLIGHT_ROW.replace("2013,1,1,", "2013,2,1,").replace("2013-01-01T10", "2013-02-01T10")
    no_month = FLIGHT_ROW.replace("2013,1,1,", "2013,x,1,").replace("2013-01-01T10", "2013-02-01T10")
    text = lines(FLIGHTS_HEADER, FLIGHT_ROW, feb, no_month)
    jan = parse_text("flights", text, "2013-01")
    assert len(jan.frame) == 1 and len(jan.rejects) == 0 and jan.rows_read == 1
    feb_result = parse_text("flights", text, "2013-02")
    assert len(feb_result.frame) == 1 and feb_result.rows_read == 2
    # The row with month "x" is attributed by its time_hour (Feb 1, 5 am New York).
    assert (
        feb_result.rejects.iloc[0]["source_line"] == 4 and "month='x'" in feb_result.rejects.iloc[0]["reason"]
    )
    empty = parse_text("flights", text, "2013-05")
    assert empty.critical and "no flights rows for month 2013-05" in empty.critical[0]


def test_truncated_last_row_is_a_truncated_reject(parse_text: Parse) -> None:
    text = lines(WEATHER_HEADER, WEATHER_ROW) + WEATHER_ROW[:20]  # cut mid-row, no final newline
    result = parse_text("weather", text)
    assert len(result.frame) == 1 and result.rows_read == 2 and not result.critical
    reject = result.rejects.iloc[0]
    assert reject["check_name"] == "truncated" and reject["source_line"] == 3
    assert "line has 6 fields, expected 15" in reject["reason"]
    assert "without a line break after line 3" in reject["reason"] and "weather.csv" in reject["reason"]
    assert reject["month_key"] == "2013-01"


def test_blank_lines_keep_physical_line_numbers(parse_text: Parse) -> None:
    result = parse_text("airlines", "carrier,name\r\n\r\nUA,United\r\nAA,American\r\n")
    assert result.frame["_source_line"].tolist() == [3, 4]
    quoted = parse_text("airlines", 'carrier,name\nUA,"United, Inc"\n\nAA,"Amer\nican"\nB6,JetBlue\n')
    assert quoted.frame["name"].tolist() == ["United, Inc", "Amer\nican", "JetBlue"]
    assert quoted.frame["_source_line"].tolist() == [2, 4, 6]


def test_empty_and_header_only_files_are_critical(parse_text: Parse) -> None:
    empty = parse_text("airlines", "")
    assert "the file is empty" in empty.critical[0] and "airlines.csv" in empty.critical[0]
    header_only = parse_text("planes", "tailnum,year,type,manufacturer,model,engines,seats,speed,engine\n")
    assert "header but no data rows" in header_only.critical[0]


def test_renamed_column_is_critical(parse_text: Parse) -> None:
    result = parse_text("weather", lines(WEATHER_HEADER.replace("temp", "temperature"), WEATHER_ROW))
    message = result.critical[0]
    assert "weather.csv" in message and "missing columns temp" in message
    assert "found unexpected temperature" in message and "expected columns: origin, year" in message
    assert len(result.frame) == 0


def test_extra_columns_are_not_read_but_named(parse_text: Parse) -> None:
    header = WEATHER_HEADER.replace("origin,", "station_id,origin,") + ",source"
    row = "725020," + WEATHER_ROW + ",ASOS"
    result = parse_text("weather", lines(header, row), "2013-01")
    assert not result.critical and len(result.frame) == 1 and result.frame["origin"].tolist() == ["EWR"]
    assert result.ignored_columns == ["station_id", "source"]
    assert "station_id" not in result.frame.columns


def test_zip_is_read_and_corrupt_zip_is_critical(parse_text: Parse) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flights.csv", lines(FLIGHTS_HEADER, FLIGHT_ROW) * 1)
    good = parse_text("flights", buffer.getvalue(), name="flights.csv.zip")
    assert len(good.frame) == 1 and not good.critical
    cut = parse_text("flights", buffer.getvalue()[:-30], name="flights.csv.zip")
    assert "corrupt or truncated zip" in cut.critical[0] and "flights.csv.zip" in cut.critical[0]


def test_real_flights_cached_and_january(real_dir: Path, tmp_path: Path) -> None:
    # Speed is the benchmark's (benchmarks/pipeline.py), not a unit test's: here the whole file parses
    # once and a month is taken from that one cached parse.
    landed = land_file(source_file(real_dir, "flights"), "flights", tmp_path)
    full = parse_table(landed)
    assert len(full.frame) == 336_776 and full.rows_read == 336_776 and not full.critical
    cached = len(parse_module._cache)
    january = parse_table(landed, "2013-01")
    assert len(parse_module._cache) == cached  # the month came from the cached parse, not a second one
    assert len(january.frame) == 27_004 and january.rows_read == 27_004
    assert january.frame["dep_time"].isna().sum() == 521  # cancelled flights are kept
    assert january.frame["_source_line"].iloc[0] == 2
    assert (january.frame["month_key"] == "2013-01").all()


def test_row_without_any_month_goes_to_the_out_of_range_bucket(parse_text: Parse) -> None:
    lost = FLIGHT_ROW.replace("2013,1,1,", "x,1,1,").replace("2013-01-01T10:00:00Z", "never")
    text = lines(FLIGHTS_HEADER, FLIGHT_ROW, lost)
    result = parse_text("flights", text, "2013-01")
    assert result.rows_read == 1 and len(result.frame) == 1 and result.rejects.empty
    outside = parse_text("flights", text, "out-of-range")
    assert outside.rejects["source_line"].tolist() == [3]
    assert outside.rejects["month_key"].tolist() == ["out-of-range"]


def test_the_same_bytes_from_two_files_name_each_its_own_file(real_dir: Path, tmp_path: Path) -> None:
    # A process may parse a copy of a file it parsed before (a moved source folder, another home): the
    # cached parse must not stamp the first file's name on the copy's rows (provenance, reconciliation).
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "airlines.csv").write_bytes((real_dir / "airlines.csv").read_bytes())
    results = [
        parse_table(land_file(folder / "airlines.csv", "airlines", tmp_path / f"landing-{folder.name}"))
        for folder in (first, second)
    ]
    for folder, result in zip((first, second), results, strict=True):
        assert result.source_file == str(folder / "airlines.csv")
        assert set(result.frame["_source_file"]) == {str(folder / "airlines.csv")}
