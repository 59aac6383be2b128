"""The source arriving month by month in the watched folder, as the automation expects it.

The contract (``hybridops.ingest.arrivals``): the folder's ``flights.csv`` and ``weather.csv`` (nycflights13
format) are whole-table files rewritten with one more month each time; planes, airlines and airports are
reference files copied once. Every write is atomic (a temporary file in the same folder, then a rename), so
the sensor never reads half a file.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hybridops.errors import SourceError
from hybridops.files import write_atomically
from hybridops.ingest.sources import FILE_NAMES, packaged_source_dir

REFERENCE_TABLES = ("planes", "airlines", "airports")


def _read_csv(folder: Path, table: str) -> pd.DataFrame:
    for name in FILE_NAMES[table]:
        path = folder / name
        if not path.is_file():
            continue
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                (member,) = [m for m in archive.namelist() if m.endswith(".csv")]
                return pd.read_csv(io.BytesIO(archive.read(member)), dtype=str, keep_default_na=False)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    raise SourceError(f"no {table} file in {folder}: expected {' or '.join(FILE_NAMES[table])}")


def _month_keys(frame: pd.DataFrame) -> pd.Series:
    return frame["year"].str.zfill(4) + "-" + frame["month"].str.zfill(2)


@dataclass
class MonthlySource:
    """The source of ``origin`` (default the nycflights13 package's files), ``every`` n-th flight kept (1: all;
    weather is small and kept whole), dropped into ``target`` month by month."""

    target: Path
    origin: Path | None = None
    every: int = 1
    dropped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        origin = self.origin or packaged_source_dir()
        flights = _read_csv(origin, "flights")
        if self.every > 1:
            flights = flights.iloc[:: self.every]
        self._flights = flights.assign(_month=_month_keys(flights).to_numpy())
        weather = _read_csv(origin, "weather")
        self._weather = weather.assign(_month=_month_keys(weather).to_numpy())
        self._origin = origin

    @property
    def months(self) -> list[str]:
        """Every month the source holds, oldest first."""
        return sorted(set(self._flights["_month"]))

    def flights_of(self, month: str) -> pd.DataFrame:
        return self._flights[self._flights["_month"] == month].drop(columns="_month")

    def drop(self, month: str) -> None:
        """Rewrite the folder's monthly files with every month up to ``month`` (the reference files first)."""
        if month not in self.months:
            raise SourceError(
                f"the source has no month {month}; it holds {self.months[0]}..{self.months[-1]}"
            )
        self.target.mkdir(parents=True, exist_ok=True)
        if not self.dropped:
            for table in REFERENCE_TABLES:
                name = FILE_NAMES[table][0]
                shutil.copyfile(self._origin / name, self.target / f".{name}.tmp")
                os.replace(self.target / f".{name}.tmp", self.target / name)
        for table, frame in (("flights", self._flights), ("weather", self._weather)):
            upto = frame[frame["_month"] <= month].drop(columns="_month")
            write_atomically(self.target / f"{table}.csv", upto.to_csv(index=False))
        self.dropped.append(month)
