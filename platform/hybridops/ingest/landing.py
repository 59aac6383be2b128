"""The immutable, content-addressed landing zone: byte-for-byte copies of every source file read.

Files land at ``<landing_dir>/<table>/<sha256>/<original name>``. The hash in the path makes landing
idempotent (the same bytes land once) and lets any warehouse row be traced back to the exact bytes it came
from, even after the source folder changes.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from hybridops.files import remove_stale_staged, staged_path
from hybridops.ingest.sources import unreadable
from hybridops.warehouse.db import replace_rows, table_exists

LANDING_TABLE = "landing_files"

_CHUNK = 1 << 20


@dataclass(frozen=True)
class LandedFile:
    """One source file copied into the landing zone."""

    table: str
    source_path: Path
    landed_path: Path
    sha256: str
    bytes: int


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def land_file(path: Path, table: str, landing_dir: Path) -> LandedFile:
    """Copy ``path`` into the landing zone (no-op when the same bytes already landed) and return its record.

    The copy goes to a temporary name and is renamed into place, so a crash never leaves a partial file
    under a content hash. The landed file is made read-only.
    """
    source = path.resolve()
    try:
        sha = sha256_of(source)
    except OSError as exc:  # the source's read failed (not the landing zone's write): name the file
        raise unreadable(path, exc) from exc
    target = landing_dir / table / sha / source.name
    if not (target.is_file() and sha256_of(target) == sha):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staged(target)  # what a copy killed mid-way left
        tmp = staged_path(target)
        try:
            shutil.copyfile(source, tmp)
            copied = sha256_of(tmp)
            if copied != sha:  # the source changed while we copied it: refuse to land a mislabelled file
                raise OSError(f"{source} changed while it was being landed; run again")
            if target.exists():  # a damaged earlier copy: replace it (it is read-only, so unlock first)
                target.chmod(stat.S_IWUSR | stat.S_IRUSR)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
    target.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return LandedFile(
        table=table,
        source_path=source,
        landed_path=target,
        sha256=sha,
        bytes=target.stat().st_size,
    )


def landing_record(landed: LandedFile, run_id: str) -> pd.DataFrame:
    """One row for the ``landing_files`` table."""
    return pd.DataFrame(
        {
            "table_name": [landed.table],
            "source_path": [str(landed.source_path)],
            "landed_path": [str(landed.landed_path)],
            "sha256": [landed.sha256],
            "bytes": [landed.bytes],
            "landed_at": [datetime.now(UTC).replace(tzinfo=None)],
            "run_id": [run_id],
        }
    )


def record_landing(con: duckdb.DuckDBPyConnection, landed: LandedFile, run_id: str) -> None:
    """Write (or refresh) the ``landing_files`` row of ``landed``: one row per table and content hash."""
    replace_rows(
        con,
        LANDING_TABLE,
        landing_record(landed, run_id),
        {"table_name": landed.table, "sha256": landed.sha256},
    )


def latest_landing(con: duckdb.DuckDBPyConnection, table: str) -> LandedFile | None:
    """The file most recently landed for ``table`` (from ``landing_files``), or None before the first."""
    if not table_exists(con, LANDING_TABLE):
        return None
    rows = con.execute(
        f"select source_path, landed_path, sha256, bytes from {LANDING_TABLE} "
        "where table_name = ? order by landed_at desc limit 1",
        [table],
    ).fetchall()
    if not rows:
        return None
    source_path, landed_path, sha256, size = rows[0]
    return LandedFile(table, Path(source_path), Path(landed_path), sha256, int(size))
