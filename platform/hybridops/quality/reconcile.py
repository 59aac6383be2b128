"""Rows read = valid + quarantined, per source file: the proof that no row was lost between parse and load.

The counts on the right are read back from the warehouse after the step wrote them (valid rows of a
blocked batch are not published, so for those the held-back count is used), the count on the left comes
from the parser's record layout. For a monthly file the whole file is reconciled too: its rows = the rows
of the loaded months + the rows quarantined in the out-of-range bucket.
"""

from __future__ import annotations

import duckdb

from hybridops.quality.quarantine import QUARANTINE_TABLE
from hybridops.quality.validate import RECONCILE_CHECK, CheckOutcome
from hybridops.warehouse.db import table_exists


def quarantined_rows(con: duckdb.DuckDBPyConnection, table: str, month_key: str, source_file: str) -> int:
    """Quarantine rows stored for one table, partition (or bucket) and source file."""
    if not table_exists(con, QUARANTINE_TABLE):
        return 0
    row = con.execute(
        f"select count(*) from {QUARANTINE_TABLE} where table_name = ? and month_key = ? and source_file = ?",
        [table, month_key, source_file],
    ).fetchone()
    return int(row[0]) if row else 0


def published_rows(
    con: duckdb.DuckDBPyConnection, table: str, month_key: str | None, source_file: str
) -> int:
    """Valid rows stored in the table for one partition (None: the whole table) and source file."""
    if not table_exists(con, table):
        return 0
    where, params = "_source_file = ?", [source_file]
    if month_key is not None:
        where, params = where + " and month_key = ?", [*params, month_key]
    row = con.execute(f'select count(*) from "{table}" where {where}', params).fetchone()
    return int(row[0]) if row else 0


def reconcile(
    source_file: str,
    period: str,
    rows_read: int,
    valid: int,
    quarantined: int,
    *,
    held: bool = False,
    file_rows: int | None = None,
    in_loaded_months: int | None = None,
    out_of_range: int | None = None,
) -> CheckOutcome:
    """The blocking check: ``rows_read == valid + quarantined`` (and, for a monthly file, its whole-file
    identity ``file_rows == in_loaded_months + out_of_range``)."""
    problems = []
    valid_text = f"{valid} valid{' (held back: batch blocked)' if held else ''}"
    if rows_read != valid + quarantined:
        problems.append(
            f"{source_file}: {rows_read} rows read for {period} but {valid_text} + {quarantined} quarantined "
            f"({rows_read - valid - quarantined:+d} unaccounted)"
        )
    whole = ""
    if file_rows is not None and in_loaded_months is not None and out_of_range is not None:
        whole = (
            f"; the file's {file_rows} rows = {in_loaded_months} in loaded months + {out_of_range} "
            "out-of-range (quarantined)"
        )
        if file_rows != in_loaded_months + out_of_range:
            problems.append(
                f"{source_file}: the file has {file_rows} rows but {in_loaded_months} are in loaded months and "
                f"{out_of_range} in the out-of-range quarantine ({file_rows - in_loaded_months - out_of_range:+d} "
                "unaccounted)"
            )
    metadata: dict[str, float | int | str] = {
        "rows_read": rows_read,
        "valid": valid,
        "quarantined": quarantined,
    }
    if out_of_range is not None:
        metadata["out_of_range"] = out_of_range
    if problems:
        return CheckOutcome(
            RECONCILE_CHECK,
            False,
            "ERROR",
            True,
            "; ".join(problems) + "; rows were lost between parse and load: rerun the month and report a bug",
            metadata,
        )
    return CheckOutcome(
        RECONCILE_CHECK,
        True,
        "ERROR",
        True,
        f"{source_file}: {rows_read} rows read for {period} = {valid_text} + {quarantined} quarantined{whole}",
        metadata,
    )
