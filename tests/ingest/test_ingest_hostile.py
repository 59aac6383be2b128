"""Hostile source files found by probing the parser (docs/reliability.md, "Hostile files probed").

Each case is a defect the probe found: a traceback, a row silently changed or swallowed, a bad value
accepted, or a message that did not say what is wrong where. Every file goes through the real landing and
parse; a refused file must name the file (and the line where there is one), a row-level defect must be a
quarantined row with its line.
"""

import gzip
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from ingest_support import FLIGHT_ROW, FLIGHTS_HEADER, WEATHER_HEADER, WEATHER_ROW

from hybridops.errors import SourceError
from hybridops.ingest.landing import land_file
from hybridops.ingest.parse import ParseResult
from hybridops.ingest.sources import resolve_source_dir, source_file
from hybridops.settings import Settings

Parse = Callable[..., ParseResult]
AIRLINES = "carrier,name\nUA,United Air Lines Inc.\nAA,American Airlines Inc.\n"


def lines(header: str, *rows: str) -> str:
    return "\n".join([header, *rows]) + "\n"


def with_value(header: str, row: str, column: str, value: str) -> str:
    fields = row.split(",")
    fields[header.split(",").index(column)] = value
    return ",".join(fields)


def _zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("airlines.csv", text)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, expected",
    [
        # csv.Error tracebacks before
        (AIRLINES.replace("\n", "\r").encode(), "lone CR (classic Mac line endings)"),
        (b"carrier,name\nUA,United\rAA,American\n", "line 2 has a lone CR"),
        (b'carrier,name\nUA,"' + b"x" * 200_000 + b'"\n', "line 2: field larger than field limit"),
        (b"carrier,name" + b"x" * 2_000_000 + b"\nUA,United\n", "line 1 is 2,000,012 bytes long"),
        # pyarrow's "straddling object straddles two block boundaries" before
        (b"carrier,name\nUA," + b"x" * 10_000_000 + b"\n", "line 2 is 10,000,003 bytes long"),
        # the lines after the open quote were read as one value of one valid row before
        (b'carrier,name\nUA,"United\nAA,American\nB6,JetBlue\n', "line 2: a quote opened in this record"),
        # the first copy of the column was used and the other ignored before
        (b"carrier,name,carrier\nUA,United,XX\n", "column carrier appears more than once"),
        # "the header is not UTF-8 text" (or a list of NUL-laden names) before: now what the file is
        (AIRLINES.encode("utf-16"), "is UTF-16 text"),
        (AIRLINES.encode("utf-16-le"), "has NUL bytes in its header (UTF-16 text"),
        (gzip.compress(AIRLINES.encode()), "is gzip-compressed"),
        (_zip(AIRLINES), "is a zip archive"),
        # pyarrow's "CSV conversion error to string: invalid UTF8 data" without a line before
        ("carrier,name\nUA,United\nAF,Air Franç\n".encode("latin-1"), "line 3 is not UTF-8 text (byte 0xe7"),
        # "found unexpected carrier ,  name": the spaces were invisible
        (b"carrier , name\nUA,United\n", "found unexpected 'carrier ', ' name'"),
        (b"Carrier,name\nUA,United\n", "names differ only in case or spaces: 'Carrier' for carrier"),
    ],
    ids=[
        "cr-only",
        "lone-cr",
        "long-quoted-field",
        "long-header",
        "10mb-line",
        "unclosed-quote",
        "repeated-column",
        "utf16",
        "utf16-no-bom",
        "gzip",
        "zip",
        "latin1",
        "padded-header",
        "cased-header",
    ],
)
def test_a_file_that_is_not_usable_csv_is_refused_naming_file_and_place(
    parse_text: Parse, data: bytes, expected: str
) -> None:
    result = parse_text("airlines", data)
    assert len(result.critical) == 1, result.critical
    assert expected in result.critical[0] and "airlines.csv" in result.critical[0]
    assert len(result.frame) == 0 and result.rows_read == 0


@pytest.mark.parametrize(
    "table, column, value",
    [
        # TypeError tracebacks before (the integer did not fit int64)
        ("flights", "distance", "99999999999999999999"),
        ("flights", "distance", "9223372036854775808"),
        # ArrowInvalid tracebacks before: `hybridops run` failed naming neither file nor row
        ("flights", "time_hour", "3000-01-01T10:00:00Z"),
        ("flights", "time_hour", "0001-01-01T10:00:00Z"),
        # accepted before: infinity passes a range with no upper bound; NaN turned into a missing value
        ("weather", "precip", "inf"),
        ("weather", "precip", "1e309"),
        ("weather", "precip", "NaN"),
    ],
)
def test_an_untypable_value_is_a_quarantined_row_with_its_line(
    parse_text: Parse, table: str, column: str, value: str
) -> None:
    header, row = (FLIGHTS_HEADER, FLIGHT_ROW) if table == "flights" else (WEATHER_HEADER, WEATHER_ROW)
    result = parse_text(table, lines(header, row, with_value(header, row, column, value)))
    assert not result.critical and result.rows_read == 2 and len(result.frame) == 1
    reject = result.rejects.iloc[0]
    assert (reject["check_name"], reject["source_line"]) == ("type", 3)
    assert f"{column}={value!r} is not" in reject["reason"] and f"{table}.csv" in reject["reason"]


def test_quoted_line_breaks_past_a_read_block_are_still_read(parse_text: Parse) -> None:
    # Refused before ("CSV parser got out of sync with chunker") once the file passed one 1 MiB block.
    rows = [f'C{i},"Name\nline {i}"' for i in range(100_000)]
    result = parse_text("airlines", lines("carrier,name", *rows))
    assert not result.critical and result.rows_read == 100_000 and len(result.frame) == 100_000
    assert result.frame["name"].iloc[-1] == "Name\nline 99999"
    assert result.frame["_source_line"].iloc[-1] == 200_000


def test_a_folder_a_broken_link_or_an_unreadable_file_is_named(tmp_path: Path) -> None:
    # "no airlines file in <folder>" before for the first two, though an entry by that name is there.
    (tmp_path / "airlines.csv").mkdir()
    with pytest.raises(SourceError, match=r"airlines\.csv is a folder"):
        source_file(tmp_path, "airlines")
    (tmp_path / "airlines.csv").rmdir()
    os.mkfifo(tmp_path / "airlines.csv")  # never opened: reading a pipe nobody writes would hang
    with pytest.raises(SourceError, match=r"airlines\.csv is not a regular file"):
        source_file(tmp_path, "airlines")
    (tmp_path / "airlines.csv").unlink()
    (tmp_path / "airlines.csv").symlink_to(tmp_path / "gone.csv")
    with pytest.raises(SourceError, match=r"airlines\.csv is a broken symbolic link \(to .*gone\.csv\)"):
        source_file(tmp_path, "airlines")
    # A file whose read fails with an I/O error (root ignores permission bits; this fails for anyone).
    # The raw step failed with "OSError: [Errno 5] Input/output error" and no file name before.
    (tmp_path / "airlines.csv").unlink()
    (tmp_path / "airlines.csv").symlink_to("/proc/self/mem")
    with pytest.raises(SourceError, match=r"cannot read .*airlines\.csv \(Input/output error\)"):
        source_file(tmp_path, "airlines")
    with pytest.raises(SourceError, match=r"cannot read .*airlines\.csv"):
        land_file(tmp_path / "airlines.csv", "airlines", tmp_path / "landing")


def test_a_zip_bomb_is_refused_before_it_is_inflated(parse_text: Parse) -> None:
    # Over 1 GiB of CSV in a 5 MB zip: inflated, the parse's copies of it would exhaust memory and the
    # process would die without a message.
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("flights.csv", "w", force_zip64=True) as member,
    ):
        member.write((FLIGHTS_HEADER + "\n").encode())
        for _ in range(64):
            member.write(b"0" * (1 << 24))
    assert len(buffer.getvalue()) < 8 << 20  # a few MB
    result = parse_text("flights", buffer.getvalue(), name="flights.csv.zip")
    size = len(FLIGHTS_HEADER) + 1 + (1 << 30)
    assert len(result.critical) == 1, result.critical
    assert f"flights.csv.zip: {size:,} bytes of CSV is over the 1,073,741,824" in result.critical[0]


def _flag_zip(data: bytes, offsets: tuple[int, int], value: bytes, combine: bool) -> bytes:
    """``data`` with a field of the local and the central header of its one member changed."""
    out = bytearray(data)
    for signature, offset in zip((b"PK\x03\x04", b"PK\x01\x02"), offsets, strict=True):
        at = out.find(signature) + offset
        if combine:
            out[at] |= value[0]
        else:
            out[at : at + len(value)] = value
    return bytes(out)


@pytest.mark.parametrize(
    "change, expected",
    [
        # RuntimeError / NotImplementedError tracebacks from zipfile before
        (lambda data: _flag_zip(data, (6, 8), b"\x01", combine=True), "is encrypted, password required"),
        (
            lambda data: _flag_zip(data, (8, 10), (99).to_bytes(2, "little"), combine=False),
            "That compression method is not supported",
        ),
    ],
    ids=["password", "unknown-compression"],
)
def test_a_zip_that_cannot_be_opened_is_refused(
    parse_text: Parse, change: Callable[[bytes], bytes], expected: str
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("flights.csv", lines(FLIGHTS_HEADER, FLIGHT_ROW))
    result = parse_text("flights", change(buffer.getvalue()), name="flights.csv.zip")
    assert len(result.critical) == 1, result.critical
    message = result.critical[0]
    assert "flights.csv.zip: the zip archive cannot be opened" in message and expected in message


def test_a_source_folder_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    # "source folder ... does not exist" before, though something is there.
    (tmp_path / "data").write_text("carrier,name\n")
    with pytest.raises(SourceError, match=r"source folder .*data is a file, not a folder"):
        resolve_source_dir(Settings(source_dir=tmp_path / "data"))
