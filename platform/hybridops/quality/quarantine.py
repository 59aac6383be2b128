"""The quarantine table: one row per rejected source row, with where it came from and why."""

from __future__ import annotations

import duckdb
import pandas as pd

from hybridops.warehouse.db import replace_rows

QUARANTINE_TABLE = "quarantine"
QUARANTINE_COLUMNS = (
    "table_name",
    "month_key",
    "source_file",
    "source_line",
    "check_name",
    "reason",
    "record_json",
    "run_id",
    "quarantined_at",
)
# Dimension tables have no monthly partition; their quarantine rows use this key.
STATIC_MONTH_KEY = "static"
# Rows of a monthly file whose own date gives no month, or a month outside every loaded partition: they are
# quarantined here (never dropped), so rows read = valid + quarantined holds for every file.
OUT_OF_RANGE_MONTH_KEY = "out-of-range"
OUT_OF_RANGE = "out_of_range"  # the rule (check_name) of rows moved to that bucket


def empty_quarantine() -> pd.DataFrame:
    """A quarantine frame with no rows and the declared column types."""
    return pd.DataFrame(
        {
            "table_name": pd.Series(dtype="string"),
            "month_key": pd.Series(dtype="string"),
            "source_file": pd.Series(dtype="string"),
            "source_line": pd.Series(dtype="Int64"),
            "check_name": pd.Series(dtype="string"),
            "reason": pd.Series(dtype="string"),
            "record_json": pd.Series(dtype="string"),
            "run_id": pd.Series(dtype="string"),
            "quarantined_at": pd.Series(dtype="datetime64[ns]"),
        }
    )


def write_quarantine(
    con: duckdb.DuckDBPyConnection, table_name: str, month_key: str, frame: pd.DataFrame
) -> int:
    """Replace the quarantine rows of one table and partition with ``frame``; returns rows written.

    Args:
        con: open warehouse connection.
        table_name: source table the rows belong to (``flights``...).
        month_key: ``YYYY-MM`` for monthly tables, ``"static"`` for dimension tables.
        frame: rows with exactly :data:`QUARANTINE_COLUMNS` (may be empty: that clears the partition).
    """
    missing = [c for c in QUARANTINE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"quarantine frame lacks columns {missing}")
    rows = frame.loc[:, list(QUARANTINE_COLUMNS)]
    if rows.empty:
        # An empty frame still fixes the schema on first write (object columns would become INTEGER).
        rows = empty_quarantine()
    return replace_rows(con, QUARANTINE_TABLE, rows, where={"table_name": table_name, "month_key": month_key})


# What `hybridops quarantine` lists and exports (record_json too when exporting).
LISTED_COLUMNS = ("table_name", "month_key", "source_file", "source_line", "check_name", "reason", "run_id")


def read_quarantine(
    con: duckdb.DuckDBPyConnection,
    table: str | None = None,
    month: str | None = None,
    reason: str | None = None,
    run: str | None = None,
) -> pd.DataFrame:
    """Quarantined rows, filtered, ordered by table, month, file and line.

    Args:
        table: source table (``flights``, ``weather``...).
        month: ``YYYY-MM`` (or ``static`` for dimension tables).
        reason: case-insensitive text the check name or the reason contains (``distance``, ``duplicate_key``).
        run: a Dagster run id or its first characters (as the CLI and the UI show it).
    """
    from hybridops.warehouse.db import read_frame, table_exists

    if not table_exists(con, QUARANTINE_TABLE):
        return empty_quarantine()
    where: list[str] = []
    params: list[object] = []
    for clause, value in (
        ("table_name = ?", table),
        ("month_key = ?", month),
        ("starts_with(run_id, ?)", run),
    ):
        if value:
            where.append(clause)
            params.append(value)
    if reason:
        where.append("(contains(lower(reason), lower(?)) or contains(lower(check_name), lower(?)))")
        params += [reason, reason]
    sql = f"select {', '.join(QUARANTINE_COLUMNS)} from {QUARANTINE_TABLE}"
    if where:
        sql += " where " + " and ".join(where)
    return read_frame(con, sql + " order by table_name, month_key, source_file, source_line", params)
