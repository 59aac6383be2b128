"""Files that several processes may read while one replaces them, and what a writer that died left behind.

A file is written whole under a staged name beside it (``.<name>.<host>.<pid>-<thread>.tmp``) and renamed
into place: a reader sees the old file or the new one, never a part. A writer killed mid-write (SIGKILL,
out of memory, a lost node) leaves its staged file; the next writer of the same file removes it
(:func:`remove_stale_staged`): at once when the dead writer was a process of this host, after
``STALE_SECONDS`` when it ran elsewhere (another pod on a shared volume, whose processes this one cannot
see).
"""

from __future__ import annotations

import glob
import os
import socket
import threading
import time
from pathlib import Path

STALE_SECONDS = 3600.0
_SUFFIX = ".tmp"


def staged_path(target: Path) -> Path:
    """Where this process and thread stage ``target`` before renaming it into place."""
    return target.with_name(
        f".{target.name}.{socket.gethostname()}.{os.getpid()}-{threading.get_ident()}{_SUFFIX}"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    try:  # a zombie is dead for this purpose (its parent has not reaped it yet)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def _writer(staged: Path, target: Path) -> tuple[str, int] | None:
    """(host, pid) of the writer of ``staged``, from its name; None for a name of another form."""
    middle = staged.name[len(target.name) + 2 : -len(_SUFFIX)]
    host, _, owner = middle.rpartition(".")
    pid = owner.split("-", 1)[0]
    return (host, int(pid)) if host and pid.isdigit() else None


def remove_stale_staged(target: Path, stale_seconds: float = STALE_SECONDS) -> list[Path]:
    """Remove staged copies of ``target`` whose writer is gone; returns them.

    Gone: a process of this host that no longer runs, or a staged file older than ``stale_seconds`` (its
    writer ran on another host). A writer still at work keeps its file.
    """
    here = socket.gethostname()
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*{_SUFFIX}"):
        writer = _writer(path, target)
        if writer is None or writer == (here, os.getpid()):
            continue
        try:
            old = time.time() - path.stat().st_mtime > stale_seconds
        except FileNotFoundError:
            continue
        if old or (writer[0] == here and not _pid_alive(writer[1])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path``: a reader sees the old file or the new one, never a part (staged beside it,
    renamed into place); staged files of dead writers of ``path`` are removed first."""
    remove_stale_staged(path)
    staged = staged_path(path)
    try:
        staged.write_text(text)
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
