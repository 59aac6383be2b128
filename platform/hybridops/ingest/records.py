"""The bytes of a source file before any value is typed: is it CSV text, its header, its record layout.

File-level findings are returned as messages (the caller names the file and refuses it); record-level
damage (control bytes) as messages per record. Everything here works on the raw bytes, vectorised where the
31 MB flights file makes it matter, so that a line number can be given for every finding.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Bytes that never belong in a CSV value (tab, LF and CR are the format's own). pyarrow keeps them inside
# the text, and a number cast then fails or stops at the byte: the row is quarantined for the byte instead.
CONTROL_BYTES = np.array([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F], dtype=np.uint8)
_IS_CONTROL = np.zeros(256, dtype=bool)
_IS_CONTROL[CONTROL_BYTES] = True  # a 256-entry lookup: one pass over the bytes
TRUNCATED, CONTROL = "truncated", "control_bytes"
# The longest record accepted. The parser reads in blocks of this size and a record must fit in one; the
# real files' records are under 200 bytes, so a longer one is a lost line break or binary damage.
MAX_RECORD_BYTES = 1 << 20
# The largest source file parsed (1 GiB, 32 times the real flights file): its parse holds it in memory
# several times over.
MAX_SOURCE_BYTES = 1 << 30

# Leading bytes of files that are not CSV text, with what to do about each.
_SIGNATURES = (
    (b"\x1f\x8b", "is gzip-compressed, not CSV text; decompress it (gunzip) and put the .csv in its place"),
    (
        b"PK\x03\x04",
        "is a zip archive, not CSV text; unzip it and put the .csv in its place "
        "(only flights may be given zipped, as flights.csv.zip)",
    ),
    (b"\xff\xfe", "is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8 CSV"),
    (b"\xfe\xff", "is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8 CSV"),
)


@dataclass
class Layout:
    """Where each CSV record (after the header) starts and how many fields it has."""

    lines: np.ndarray  # 1-based physical line number of each record
    nfields: np.ndarray
    text: Callable[[int], str]  # raw text of record i, for reject messages


def not_csv_text(data: bytes) -> str | None:
    """Why ``data`` (BOM already removed) is not UTF-8 CSV text, or None; the reason says what to do."""
    for signature, reason in _SIGNATURES:
        if data.startswith(signature):
            return reason
    first = data.split(b"\n", 1)[0]
    if b"\x00" in first:
        return (
            "has NUL bytes in its header (UTF-16 text without a byte-order mark, or a binary file); "
            "save it as UTF-8 CSV"
        )
    if b"\r" in first.rstrip(b"\r"):
        return (
            "has line breaks that are a lone CR (classic Mac line endings), so it reads as one line; "
            "save it with LF or CRLF line breaks"
        )
    # A lone CR elsewhere: the CSV readers take it for a line break (even inside quotes for pyarrow's
    # block splitter), so records and line numbers would no longer match the file's lines.
    buf = np.frombuffer(data, dtype=np.uint8)
    lone = np.flatnonzero((buf[:-1] == 13) & (buf[1:] != 10))
    if len(lone):
        line = data.count(b"\n", 0, int(lone[0])) + 1
        return (
            f"line {line} has a lone CR inside it (a line break that is not LF or CRLF), so the line "
            "would be read as two; remove the CR or save the file with LF line breaks"
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (
            f"line {line} is not UTF-8 text (byte 0x{data[exc.start]:02x}; the file may be Latin-1 or "
            "Windows-1252); save the file as UTF-8 CSV"
        )
    return None


def read_header(data: bytes) -> list[str]:
    """The column names of the first line (raises ``csv.Error`` on a line the csv module refuses)."""
    line = data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    try:
        return next(csv.reader([line]), [])
    except csv.Error as exc:
        raise csv.Error(f"line 1 (the header): {exc}") from exc


def header_problem(header: list[str], expected: list[str]) -> str | None:
    """What is wrong with the header for a table of ``expected`` columns, or None.

    Extra columns are allowed (they are not read, the landed file keeps them, and the parse result names
    them in ``ignored_columns``); a missing or repeated expected column is not: with a repeated one it is
    unknown which copy holds the data.
    """
    repeated = sorted({c for c in header if c in expected and header.count(c) > 1})
    if repeated:
        return (
            f"column {', '.join(repeated)} appears more than once in the header, so it is unknown which "
            "copy holds the data; remove the extra column"
        )
    missing = [c for c in expected if c not in header]
    if not missing:
        return None
    unexpected = [c for c in header if c not in expected]
    near = {c.strip().lower(): c for c in unexpected}
    hints = [f"{near[m]!r} for {m}" for m in missing if m in near]
    return (
        f"missing columns {', '.join(missing)}"
        + (f" (found unexpected {', '.join(_show_name(c) for c in unexpected)})" if unexpected else "")
        + (f"; names differ only in case or spaces: {', '.join(hints)}" if hints else "")
        + f"; expected columns: {', '.join(expected)}; fix the header or replace the file"
    )


def _show_name(name: str) -> str:
    # Quoted when a plain print would hide what is wrong (spaces, tabs, invisible bytes).
    return name if name.isprintable() and name == name.strip() and name else repr(name)


def layout(data: bytes, quoted: bool) -> Layout:
    """Line number and field count of every non-empty record after the header.

    Raises ``csv.Error`` (with the line in the message) on what the csv module refuses: a field longer
    than its limit, or a quote opened and never closed, which would read every line after it as one value.
    """
    if quoted:  # quoted fields may hold commas or newlines: let the csv module track physical lines
        text = data.decode("utf-8", errors="replace")
        reader = csv.reader(io.StringIO(text, newline=""))
        lines, nfields, texts = [], [], []
        previous = 0
        try:
            for row in reader:
                start, previous = previous + 1, reader.line_num
                if row:
                    lines.append(start)
                    nfields.append(len(row))
                    texts.append(",".join(row))
        except csv.Error as exc:
            raise csv.Error(f"line {reader.line_num}: {exc}") from exc
        if lines and previous > lines[-1]:
            _check_closed(text, lines[-1])
        return Layout(np.array(lines[1:], dtype=np.int64), np.array(nfields[1:]), lambda i: texts[i + 1])
    # Fast path (no quotes, so one record per line): vectorised over the bytes.
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    # Drop the CR of CRLF line ends so a "\r"-only line counts as empty.
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    ends = ends - has_cr
    line_numbers = np.arange(1, len(starts) + 1)
    non_empty = ends > starts
    starts, ends, line_numbers = starts[non_empty][1:], ends[non_empty][1:], line_numbers[non_empty][1:]
    commas = np.flatnonzero(buf == 44)
    nfields = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    return Layout(
        line_numbers,
        nfields,
        lambda i: data[starts[i] : ends[i]].decode("utf-8", errors="replace"),
    )


def _check_closed(text: str, start: int) -> None:
    """The last record spans several lines: raise ``csv.Error`` if its quote is never closed.

    The csv module (like pyarrow) silently ends such a value at the end of the file, so the lines after
    the quote would be read as one value of one row; strict mode is the only way it says so.
    """
    tail = "".join(io.StringIO(text, newline="").readlines()[start - 1 :])
    try:
        for _ in csv.reader(io.StringIO(tail, newline=""), strict=True):
            pass
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise csv.Error(
                f"line {start}: a quote opened in this record is never closed, so every line after it "
                "would be read as one value; close the quote"
            ) from exc


def longest_record(data: bytes) -> tuple[int, int]:
    """``(line, bytes)`` of the longest physical line (vectorised; for the record size limit)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    bounds = np.concatenate(([-1], np.flatnonzero(buf == 10), [len(buf)]))
    sizes = np.diff(bounds) - 1
    at = int(np.argmax(sizes))
    return at + 1, int(sizes[at])


def control_byte_records(data: bytes, layout: Layout, header: list[str]) -> dict[int, list[tuple[str, str]]]:
    """Records holding a control byte, each with where the first one is (vectorised search)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    positions = np.flatnonzero(_IS_CONTROL[buf])
    if len(positions) == 0:
        return {}
    newlines = np.flatnonzero(buf == 10)
    physical = np.searchsorted(newlines, positions) + 1  # 1-based physical line of each byte
    record = np.searchsorted(layout.lines, physical, side="right") - 1
    found: dict[int, list[tuple[str, str]]] = {}
    for pos, line, rec in zip(positions, physical, record, strict=True):  # only the damaged bytes
        if rec < 0 or int(rec) in found:
            continue  # a byte in the header is a schema problem; one message per record is enough
        line_start = int(newlines[line - 2]) + 1 if line >= 2 else 0
        column = data[line_start:pos].count(b",")
        field_name = header[column] if column < len(header) else f"field {column + 1}"
        found[int(rec)] = [
            (
                CONTROL,
                f"control byte 0x{int(buf[pos]):02x} in {field_name} on line {int(line)} "
                "(binary damage or a wrong export); fix or remove the byte in the source",
            )
        ]
    return found
