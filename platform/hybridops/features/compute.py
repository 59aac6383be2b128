"""Feature tables computed from the warehouse, written as Parquet for Feast.

The rows of each view (and the point-in-time rules they follow) come from :mod:`hybridops.features.views`;
the clock and the entity keys from :mod:`hybridops.features.keys`.

A range of months is built with one query per view (:func:`build_feature_tables_months`) and split into
monthly partitions afterwards: every row of a view belongs to the month whose window holds its
``event_timestamp``, so the partitions are the same rows, in the same order, as month by month.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from hybridops.features.keys import DEFAULT_HORIZON_MINUTES, month_window
from hybridops.features.views import MONTHLY_VIEWS, STATIC_VIEWS, _compute_months, compute_view
from hybridops.warehouse.db import write_parquet_partition

STATIC_PARTITION = "static"


def _split_months(frame: pd.DataFrame, months: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Each month's rows (``event_timestamp`` in its window), in the frame's order, with a fresh index."""
    if len(months) == 1:  # one month's query returns only that month's rows
        return {months[0]: frame}
    stamps = frame["event_timestamp"]
    parts = {}
    for month_key in months:
        start, end = month_window(month_key)
        parts[month_key] = frame[(stamps >= start) & (stamps < end)].reset_index(drop=True)
    return parts


def _write(frame: pd.DataFrame, root: Path, view: str, partition: str) -> None:
    if len(frame):
        write_parquet_partition(frame, root, view, partition)
    else:  # an empty month leaves no (stale or schema-less) file behind
        (root / view / f"month_key={partition}" / "data.parquet").unlink(missing_ok=True)


def build_feature_tables_months(
    con: duckdb.DuckDBPyConnection,
    parquet_root: Path,
    months: Sequence[str],
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
) -> dict[str, dict[str, int]]:
    """Compute every feature view's rows of ``months`` and write them as monthly Parquet partitions.

    Writes ``<parquet_root>/features/<view>/month_key=<month>/data.parquet`` for the monthly views and
    each month, and ``month_key=static`` for ``plane_profile`` once; re-running overwrites (idempotent).
    Each monthly view is one query over the whole range, split by month before writing: the partitions
    are the ones :func:`build_feature_tables` writes month by month.

    Args:
        con: Connection to the warehouse (read only is enough).
        parquet_root: Folder holding the ``features`` tree.
        months: Month keys (``YYYY-MM``), in any order; duplicates count once.
        horizon_minutes: The prediction horizon (``model.horizon_minutes``): where the rows of the
            hour and quarter-hour views are keyed.

    Returns:
        Rows per view per month: ``{month: {view: rows}}``, months in the given order. The static view
        counts its rows under every month, as when months are built one at a time.
    """
    months = list(dict.fromkeys(months))
    root = Path(parquet_root) / "features"
    counts: dict[str, dict[str, int]] = {month_key: {} for month_key in months}
    if not months:
        return counts
    for view in MONTHLY_VIEWS:
        frame = _compute_months(con, view, months, horizon_minutes)
        for month_key, part in _split_months(frame, months).items():
            _write(part, root, view, month_key)
            counts[month_key][view] = len(part)
    for view in STATIC_VIEWS:
        frame = compute_view(con, view, months[0])
        _write(frame, root, view, STATIC_PARTITION)
        for month_counts in counts.values():
            month_counts[view] = len(frame)
    return counts


def build_feature_tables(
    con: duckdb.DuckDBPyConnection,
    parquet_root: Path,
    month_key: str,
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
) -> dict[str, int]:
    """Compute every feature view's rows of ``month_key`` and write them as Parquet partitions.

    One month of :func:`build_feature_tables_months`. Returns rows per view.
    """
    return build_feature_tables_months(con, parquet_root, [month_key], horizon_minutes)[month_key]
