"""Real files with one defect each, dropped into a custom source folder: documented outcome per defect."""

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from hybridops.ingest.landing import land_file
from hybridops.ingest.parse import parse_table
from hybridops.ingest.sources import resolve_source_dir, source_file
from hybridops.quality.validate import References, ValidationResult, validate_table
from hybridops.settings import QualitySettings, Settings

Broken = Callable[[str, Callable[[bytes], bytes]], Path]


def run(folder: Path, tmp_path: Path, table: str, month_key: str | None) -> tuple[ValidationResult, Path]:
    source = source_file(resolve_source_dir(Settings(source_dir=folder)), table)
    landed = land_file(source, table, tmp_path / "landing")
    result = validate_table(table, parse_table(landed, month_key), References(), QualitySettings(), "r1")
    # The landing zone keeps the broken file byte for byte.
    assert landed.landed_path.read_bytes() == source.read_bytes()
    return result, source


def replace_line(number: int, change: Callable[[str], str]) -> Callable[[bytes], bytes]:
    def defect(data: bytes) -> bytes:
        lines = data.decode().split("\n")
        lines[number - 1] = change(lines[number - 1])
        return "\n".join(lines).encode()

    return defect


def test_renamed_column_blocks(broken_source: Broken, tmp_path: Path) -> None:
    folder = broken_source("weather", lambda b: b.replace(b"wind_speed", b"windspeed", 1))
    result, source = run(folder, tmp_path, "weather", "2013-01")
    assert result.blocked and len(result.good) == 0
    message = result.checks[0].message
    assert (
        str(source) in message and "missing columns wind_speed" in message and "expected columns" in message
    )


def test_non_numeric_value_is_quarantined(broken_source: Broken, tmp_path: Path) -> None:
    folder = broken_source("weather", replace_line(10, lambda line: line.replace(",10,", ",ten,", 1)))
    result, source = run(folder, tmp_path, "weather", "2013-01")
    assert not result.blocked and len(result.good) == 2_225
    row = result.quarantine.iloc[0]
    assert (row["check_name"], row["source_line"], row["source_file"]) == ("type", 10, str(source))
    assert "'ten'" in row["reason"]


def test_truncated_file_quarantines_the_cut_row(broken_source: Broken, tmp_path: Path) -> None:
    folder = broken_source("weather", lambda b: b[: b.index(b"\n", 50_000) + 25])
    result, _ = run(folder, tmp_path, "weather", "2013-01")
    assert not result.blocked
    row = result.quarantine.iloc[-1]
    assert row["check_name"] == "truncated" and "file cut off mid-row" in row["reason"]
    assert "ends without a line break" in row["reason"] and "weather.csv" in row["reason"]
    assert row["source_line"] == len(result.good) + 2


def test_truncated_zip_blocks(broken_source: Broken, tmp_path: Path) -> None:
    def cut_zip(data: bytes) -> bytes:
        small = io.BytesIO()
        with (
            zipfile.ZipFile(io.BytesIO(data)) as src,
            zipfile.ZipFile(small, "w", zipfile.ZIP_DEFLATED) as dst,
        ):
            dst.writestr("flights.csv", src.read("flights.csv")[:200_000])
        return small.getvalue()[: len(small.getvalue()) // 2]

    folder = broken_source("flights", cut_zip)
    result, source = run(folder, tmp_path, "flights", "2013-01")
    assert result.blocked and str(source) in result.checks[0].message
    assert "corrupt or truncated zip" in result.checks[0].message


def test_empty_file_blocks(broken_source: Broken, tmp_path: Path) -> None:
    folder = broken_source("airlines", lambda _b: b"")
    result, source = run(folder, tmp_path, "airlines", None)
    assert result.blocked and "the file is empty" in result.checks[0].message
    assert str(source) in result.checks[0].message


def test_duplicated_rows_keep_the_first(broken_source: Broken, tmp_path: Path) -> None:
    def duplicate(data: bytes) -> bytes:
        lines = data.split(b"\n")
        return b"\n".join([*lines[:5], lines[2], lines[3], *lines[5:]])

    folder = broken_source("weather", duplicate)
    result, _ = run(folder, tmp_path, "weather", "2013-01")
    assert len(result.good) == 2_226
    assert result.quarantine["source_line"].tolist() == [6, 7]
    assert result.quarantine["check_name"].tolist() == ["duplicate_key"] * 2
    assert "already seen on line 3" in result.quarantine["reason"][0]


@pytest.mark.parametrize("ratio, blocked", [(0.02, False), (0.0001, True)])
def test_out_of_range_value(broken_source: Broken, tmp_path: Path, ratio: float, blocked: bool) -> None:
    folder = broken_source("weather", replace_line(5, lambda line: line.replace(",10,", ",-5,", 1)))
    source = source_file(folder, "weather")
    landed = land_file(source, "weather", tmp_path / "landing")
    result = validate_table(
        "weather",
        parse_table(landed, "2013-01"),
        References(),
        QualitySettings(max_bad_row_ratio=ratio),
        "r1",
    )
    row = result.quarantine.iloc[0]
    assert (row["check_name"], row["source_line"]) == ("range", 5)
    assert "0 <= visib <= 10" in row["reason"] and "visib=-5.0" in row["reason"]
    assert result.blocked is blocked
    assert landed.landed_path.read_bytes() == source.read_bytes()
