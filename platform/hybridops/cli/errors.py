"""The command line's one error path: every failure that leaves a command becomes lines on stderr and an
exit code, never a traceback.

Usage errors exit 2; expected failures (:class:`~hybridops.errors.HybridopsError`, settings that do not
load, a file or folder the system refuses) exit 1 with what to do; an interrupt exits 130. Anything else is
a defect of hybridops: one line says so and where its traceback was written, for a bug report.
"""

from __future__ import annotations

import errno
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

import typer

from hybridops.errors import HybridopsError, UsageError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C

# What to do about an OS error on a path the user chose (home, source folder, an --out file).
_OS_ADVICE = {
    errno.ENOENT: "create it or give another path",
    errno.ENOTDIR: "a file stands where a folder is needed: move it, or give another path",
    errno.EEXIST: "something already stands there: remove it, or give another path",
    errno.EISDIR: "a folder stands where a file is needed: give a file path",
    errno.EACCES: "make it writable for this user, or give another path",
    errno.EPERM: "make it writable for this user, or give another path",
    errno.EROFS: "the file system is read-only: give a path on a writable one",
    errno.ENOSPC: "the disk is full: free space, or give a path on another disk",
    errno.ELOOP: "a symbolic link points back at itself: fix or remove it",
    errno.ENAMETOOLONG: "give a shorter path",
}


def _echo(line: str) -> None:
    typer.echo(line, err=True)


def _settings_lines(exc: Exception) -> list[str]:
    from hybridops.settings import Settings
    from hybridops.settings.errors import explain

    return explain(exc, Settings)  # type: ignore[arg-type]


def _is_settings_error(exc: BaseException) -> bool:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    if isinstance(exc, SettingsError):
        return True
    return isinstance(exc, ValidationError) and exc.title == "Settings"


def _write_traceback(exc: BaseException) -> Path | None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix=f"hybridops-error-{stamp}-", suffix=".txt", delete=False
        ) as handle:
            handle.write("".join(traceback.format_exception(exc)))
            return Path(handle.name)
    except OSError:
        return None


def report(exc: BaseException) -> int:
    """Print ``exc`` for a person and return the exit code."""
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        _echo("hybridops: interrupted; a step cut short is not recorded as done: run the command again")
        return EXIT_INTERRUPTED
    if isinstance(exc, UsageError):
        _echo(f"hybridops: error: {exc}")
        return EXIT_USAGE
    if isinstance(exc, HybridopsError):
        _echo(f"hybridops: {exc}")
        return EXIT_FAILURE
    if _is_settings_error(exc):
        lines = _settings_lines(exc)  # type: ignore[arg-type]
        _echo(f"hybridops: error: the settings do not load ({len(lines)} problem{'s' * (len(lines) > 1)}):")
        for line in lines:
            _echo(f"  {line}")
        return EXIT_USAGE
    if isinstance(exc, OSError) and exc.filename is not None:
        where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
        advice = _OS_ADVICE.get(exc.errno or 0, "check the path and its permissions")
        _echo(f"hybridops: {where}: {exc.strerror or exc}: {advice}")
        return EXIT_FAILURE
    written = _write_traceback(exc)
    where = f"; traceback in {written}" if written else ""
    _echo(f"hybridops: unexpected error, a defect of hybridops: {type(exc).__name__}: {exc}{where}")
    return EXIT_FAILURE
