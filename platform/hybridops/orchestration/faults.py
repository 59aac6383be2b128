"""Transient or permanent: the one place that decides whether a failed step is worth another attempt.

A step that talks to MLflow, PostgreSQL, Redis or the online store can fail because the other side is
briefly away (a restart, a failover, a full connection pool): the same call a few seconds later works. A
bad file, a failed check or a wrong setting fails the same way every time: retrying only delays the
report and hides the cause. :func:`is_transient` tells them apart by the error and every error it was
raised from (``raise ... from``, or raised while handling another), so that a library's wrapper around a
refused connection (SQLAlchemy's ``OperationalError``, MLflow's ``MlflowException``) still counts as
transient. The libraries are recognised by their exception classes' qualified names and attributes: this
module imports none of them.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator

# Errors that are transient whatever their message (qualified names of a class in the error's MRO).
_TRANSIENT_CLASSES = frozenset(
    {
        "builtins.ConnectionError",  # refused, reset, aborted, broken pipe (and requests' ConnectionError)
        "builtins.TimeoutError",  # socket.timeout too
        "redis.exceptions.ConnectionError",
        "redis.exceptions.TimeoutError",
        "redis.exceptions.BusyLoadingError",
        "requests.exceptions.ConnectionError",
        "requests.exceptions.Timeout",
        "urllib3.exceptions.NewConnectionError",
        "urllib3.exceptions.ProtocolError",
        "urllib3.exceptions.TimeoutError",
        "sqlalchemy.exc.DisconnectionError",
        "sqlalchemy.exc.TimeoutError",  # the connection pool's: every connection busy
        "http.client.RemoteDisconnected",
    }
)

# OSError numbers of a network that is briefly away.
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EPIPE,
        errno.EAGAIN,
    }
)

# PostgreSQL SQLSTATEs worth a retry: connection exceptions (class 08), the server shutting down, starting
# up or out of connections (57P01-57P03, 53300), and transaction conflicts (40001, 40P01).
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")

# DB-API errors without a SQLSTATE (raised by the client library while connecting): transient when the
# message says the server was not there, never for a refused password or a missing database.
_TRANSIENT_DB_MESSAGES = (
    "connection refused",
    "could not connect",
    "timeout expired",
    "timed out",
    "server closed the connection unexpectedly",
    "connection reset",
    "connection to server",  # psycopg: "connection to server at ... failed: Connection refused"
    "the database system is starting up",
    "the database system is shutting down",
    "terminating connection due to administrator command",
    "could not receive data from server",
    "database is locked",  # SQLite: another writer holds the file
    "could not set lock on file",  # DuckDB: another process has the warehouse open for writing
)
_PERMANENT_DB_MESSAGES = ("authentication failed", "does not exist", "permission denied", "no such table")
_DB_ERROR_CLASSES = frozenset(
    {
        "psycopg.OperationalError",
        "psycopg2.OperationalError",
        "sqlite3.OperationalError",
        "duckdb.IOException",
        "_duckdb.IOException",
        "duckdb.duckdb.IOException",
    }
)

# MLflow's error codes and HTTP statuses of a server that is busy or briefly away.
_TRANSIENT_MLFLOW_CODES = frozenset(
    {
        "TEMPORARILY_UNAVAILABLE",
        "SERVICE_UNDER_MAINTENANCE",
        "DEADLINE_EXCEEDED",
        "REQUEST_LIMIT_EXCEEDED",
        "RESOURCE_EXHAUSTED",
    }
)
_TRANSIENT_HTTP_STATUSES = frozenset({429, 502, 503, 504})
_MLFLOW_STATUS = re.compile(r"failed with error code (\d{3})")


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every error it was raised from or while handling, each once."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def _names(error: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__}


def _one_is_transient(error: BaseException) -> bool:
    names = _names(error)
    if names & _TRANSIENT_CLASSES:
        return True
    if isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS:
        return True
    # PostgreSQL's drivers (psycopg's sqlstate, psycopg2's pgcode); MLflow's exceptions have a sqlstate too.
    if any(name.startswith(("psycopg.", "psycopg2.")) for name in names):
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate:
            return sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
    if names & _DB_ERROR_CLASSES:
        message = str(error).lower()
        if any(phrase in message for phrase in _PERMANENT_DB_MESSAGES):
            return False
        return any(phrase in message for phrase in _TRANSIENT_DB_MESSAGES)
    if "mlflow.exceptions.MlflowException" in names:
        if getattr(error, "error_code", None) in _TRANSIENT_MLFLOW_CODES:
            return True
        # An answer that is not MLflow's JSON (a proxy's 503 page) keeps its status only in the message.
        status = _MLFLOW_STATUS.search(str(error))
        return status is not None and int(status.group(1)) in _TRANSIENT_HTTP_STATUSES
    return False


def is_transient(error: BaseException) -> bool:
    """True when ``error`` (or an error it came from) is a service briefly away: worth another attempt."""
    return any(_one_is_transient(e) for e in _chain(error))


def describe(error: BaseException) -> str:
    """``ConnectionRefusedError: [Errno 111] Connection refused`` for a step's retry or failure message."""
    return f"{type(error).__name__}: {error}".strip().rstrip(":")
