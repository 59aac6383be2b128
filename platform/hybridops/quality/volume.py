"""Volume per month: a month whose valid rows fall far below the months before it is incomplete.

The completeness checks compare a month with itself (each day against the month's median day), so a file
that lost half its rows evenly over the month passes them. This check compares the month's valid rows with
the median of up to ``quality.volume_reference_months`` earlier months already in the warehouse
(``quality.min_monthly_volume_ratio``); the first month loaded has nothing to compare with and passes,
saying so. Its severity is the completeness checks' (``quality.completeness_severity``).
"""

from __future__ import annotations

import duckdb
import numpy as np

from hybridops.quality.validate import VOLUME_CHECKS, CheckOutcome
from hybridops.settings import QualitySettings
from hybridops.warehouse.db import table_exists


def earlier_month_rows(
    con: duckdb.DuckDBPyConnection, table: str, month_key: str, limit: int
) -> dict[str, int]:
    """Valid rows of the ``limit`` latest months before ``month_key`` stored in ``table``."""
    if not table_exists(con, table):
        return {}
    rows = con.execute(
        f'select month_key, count(*) from "{table}" where month_key < ? '
        "group by month_key order by month_key desc limit ?",
        [month_key, limit],
    ).fetchall()
    return {str(month): int(n) for month, n in rows}


def volume_check(
    table: str,
    rows: int,
    month_key: str,
    source_file: str,
    earlier: dict[str, int],
    settings: QualitySettings,
) -> CheckOutcome | None:
    """The volume check of ``table`` for ``month_key``, or None for a table without one."""
    name = VOLUME_CHECKS.get(table)
    if name is None:
        return None
    blocking = settings.completeness_severity == "blocking"
    if not earlier:
        return CheckOutcome(
            name,
            True,
            "ERROR" if blocking else "WARN",
            blocking,
            f"{source_file}: {rows} rows for {month_key}; no earlier month loaded to compare with",
            {"rows": rows},
        )
    reference = float(np.median(list(earlier.values())))
    ratio = rows / reference if reference else 1.0
    months = ", ".join(f"{m}: {n}" for m, n in sorted(earlier.items()))
    passed = ratio >= settings.min_monthly_volume_ratio
    message = (
        f"{source_file}: {rows} rows for {month_key}, {ratio:.0%} of the median of the earlier months "
        f"({reference:.0f}; {months})"
    )
    if not passed:
        message += (
            f", under the {settings.min_monthly_volume_ratio:.0%} limit: check that the source file holds the "
            "whole month"
        )
    return CheckOutcome(
        name,
        passed,
        "ERROR" if blocking else "WARN",
        blocking,
        message,
        {"rows": rows, "reference_rows": reference, "volume_ratio": round(ratio, 4)},
    )
