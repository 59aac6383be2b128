"""What a command needs, checked before it starts: a free port to listen on, a tracking server that answers,
a file the summary can be written to.

Without these checks a busy port surfaced as a library's traceback (the exporter), a wall of Dagster logs
(``ui``), a 0 exit (``ui --mlflow``) or an error after seconds of loading (``serve``); an MLflow server that
is down kept ``model list`` retrying for minutes. Each check says what to start or change.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from hybridops.errors import HybridopsError, UsageError
from hybridops.settings import Settings

_CONNECT_SECONDS = 3.0


def require_free_port(host: str, port: int, option: str) -> None:
    """Refuse to start a server on ``host:port`` when another process listens there."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(
            f"--host {host!r} is not a name or address of this machine ({exc.strerror})"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        # As the servers do: a port whose last connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"{option} {port}: another process already listens on {host}:{port}; stop it, or choose "
                    f"another port with {option}"
                ) from None
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror}): choose another --host"
            ) from None


def require_writable_file(path: Path, option: str) -> None:
    """Refuse a summary path that cannot be written, before the work whose summary it is (a ``--json``
    path in a folder that cannot be made, or that is a folder, failed only after the whole run)."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; name a file, e.g. {path / 'summary.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(
            f"{option} {path}: {path.parent} is a file, not a folder; name another path"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"{option} {path}: cannot create its folder ({exc.strerror}); name another path"
        ) from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable by this user; name another path")


def require_tracking_server(settings: Settings) -> None:
    """Fail at once, naming the server and the setting, when the MLflow tracking server does not answer
    (MLflow's own client retries a refused connection for minutes)."""
    uri = settings.mlflow_tracking_uri
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return  # a database store: opened directly, its errors are its own
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=_CONNECT_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise HybridopsError(
            f"the MLflow tracking server {uri} (HYBRIDOPS_MLFLOW__TRACKING_URI) does not answer ({reason}): "
            f"start it (hybridops ui --mlflow serves the local store), or unset HYBRIDOPS_MLFLOW__TRACKING_URI "
            f"to use the store under {settings.home_dir}"
        ) from None
