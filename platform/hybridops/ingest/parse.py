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

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import replace

import numpy as np
import pandas as pd

from hybridops.ingest.columns import (
    COLUMN_TYPES,
    LINEAGE_COLUMNS,
    LOCAL_TZ,
    NULL_VALUES,
    ParseResult,
    empty_frame,
)
from hybridops.ingest.landing import LandedFile
from hybridops.ingest.read_file import parse_file
from hybridops.ingest.sources import MONTHLY_TABLES
from hybridops.quality.quarantine import OUT_OF_RANGE, OUT_OF_RANGE_MONTH_KEY, empty_quarantine

# Re-exported: the names importers know this module by.
__all__ = [
    "COLUMN_TYPES",
    "LINEAGE_COLUMNS",
    "LOCAL_TZ",
    "NULL_VALUES",
    "ParseResult",
    "clear_cache",
    "file_rows",
    "file_rows_by_month",
    "file_values",
    "parse_outside",
    "parse_table",
]

_CACHE_SIZE = 4
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
        ignored_columns=full.ignored_columns,
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
            full.table, empty_frame(full.table), empty_quarantine(), source_file=full.source_file
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
        frame=empty_frame(full.table),
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
    result = parse_file(landed)
    _cache[key] = result
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return result
