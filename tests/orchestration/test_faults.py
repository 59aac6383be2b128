"""``hybridops.orchestration.faults.is_transient`` on the errors the real client libraries raise.

Every transient error here is produced by the library itself against a loopback port where nothing
listens (or a real server briefly away); every permanent one by a real bad input. Nothing is constructed
by hand except where the library's error needs a server state no test can provoke quickly (an HTTP 503
from MLflow's REST client is raised through its own response handling).
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import duckdb
import pytest

from hybridops.errors import HybridopsError
from hybridops.orchestration.faults import describe, is_transient

_HELD: list[socket.socket] = []


def _closed_port() -> int:
    """A loopback port that refuses connections for the rest of the session: bound and never listening,
    so no other test's server can take it meanwhile (a freed port was taken once in the full suite)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return sock.getsockname()[1]


def _raised(call) -> BaseException:
    with pytest.raises(Exception) as caught:
        call()
    return caught.value


def test_connection_refused_by_each_client_library_is_transient() -> None:
    import psycopg
    import psycopg2
    import redis
    import requests
    import sqlalchemy

    port = _closed_port()
    errors = {
        "socket": _raised(lambda: socket.create_connection(("127.0.0.1", port), timeout=2)),
        "redis": _raised(lambda: redis.Redis(port=port, socket_connect_timeout=2).ping()),
        "requests": _raised(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=2)),
        "psycopg": _raised(lambda: psycopg.connect(f"host=127.0.0.1 port={port} connect_timeout=2")),
        "psycopg2": _raised(lambda: psycopg2.connect(f"host=127.0.0.1 port={port} connect_timeout=2")),
        # SQLAlchemy wraps the driver's error (the Feast SQL registry, MLflow's store, the Iceberg catalog).
        "sqlalchemy": _raised(
            lambda: sqlalchemy.create_engine(f"postgresql+psycopg://u:p@127.0.0.1:{port}/db").connect()
        ),
    }
    for library, error in errors.items():
        assert is_transient(error), f"{library}: {describe(error)}"


def test_mlflow_client_against_a_server_that_is_not_there_is_transient(monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    # MLflow's own HTTP retries would take minutes against a closed port; the step's retries replace them.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    # Both URIs given: a registry URI left in the environment by another test's MLflow calls would
    # otherwise send the registry call elsewhere.
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    url = f"http://127.0.0.1:{_closed_port()}"
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    error = _raised(lambda: client.search_registered_models())
    assert type(error).__name__ == "MlflowException"
    assert is_transient(error), describe(error)


def test_mlflow_unavailable_and_bad_request_answers() -> None:
    import requests
    from mlflow.utils.rest_utils import verify_rest_response

    def answer(status: int, body: str) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = body.encode()
        return response

    unavailable = _raised(lambda: verify_rest_response(answer(503, "<html>upstream down</html>"), "/x"))
    assert is_transient(unavailable), describe(unavailable)
    refused = _raised(
        lambda: verify_rest_response(
            answer(400, '{"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"}'), "/x"
        )
    )
    assert not is_transient(refused), describe(refused)


def test_data_and_setting_errors_are_permanent(tmp_path: Path) -> None:
    import sqlalchemy

    missing = _raised(lambda: (tmp_path / "flights.csv").read_text())
    blocked = tmp_path / "features"
    blocked.write_text("a file where a folder belongs")
    not_a_folder = _raised(lambda: (blocked / "weather").mkdir(parents=True))
    no_table = _raised(lambda: sqlite3.connect(tmp_path / "x.db").execute("select * from missing"))
    wrapped_no_table = _raised(
        lambda: (
            sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'y.db'}")
            .connect()
            .execute(sqlalchemy.text("select * from missing"))
        )
    )
    catalog = _raised(lambda: duckdb.connect().execute("select * from planes"))
    for error in (
        missing,
        not_a_folder,
        no_table,
        wrapped_no_table,
        catalog,
        ValueError("could not convert string to float: 'x'"),
        KeyError("dep_delay"),
        HybridopsError("flights.csv: 40 of 100 rows quarantined"),
    ):
        assert not is_transient(error), describe(error)


def test_a_locked_sqlite_or_duckdb_file_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("create table t (x)")
    holder.execute("begin exclusive")
    try:
        locked = _raised(lambda: sqlite3.connect(path, timeout=0.05).execute("select * from t"))
    finally:
        holder.execute("rollback")
    assert is_transient(locked), describe(locked)


def test_the_cause_is_found_under_wrappers() -> None:
    try:
        try:
            socket.create_connection(("127.0.0.1", _closed_port()), timeout=2)
        except OSError as refused:
            raise RuntimeError("materializing the online store failed") from refused
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
