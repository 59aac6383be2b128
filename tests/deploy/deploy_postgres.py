"""A throwaway PostgreSQL server on a loopback port, for the chart tests that run real clients against the
storage the chart deploys (``test_deploy_dagster_status``, ``test_deploy_runtime``).

A module with a unique name (not conftest) so test modules import it unambiguously.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from tools import missing, require_tool


def closed_port() -> int:
    """A loopback port nothing listens on (free when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def throwaway_postgres(user: str = "hybridops", password: str | None = None) -> Iterator[str]:
    """Start PostgreSQL on a free loopback port and yield ``postgresql://user:password@127.0.0.1:port/postgres``.

    Without ``password`` every login is trusted (the URL then carries ``unused``); with one, the server
    checks it (scram-sha-256), so a client only gets in with exactly that password. Skips the test (fails it
    under ``HYBRIDOPS_STRICT_TOOLS=1``) when the server binaries are missing, or when running as root without
    a ``postgres`` user to run them as.
    """
    initdb, postgres = require_tool("initdb"), require_tool("postgres")
    base = Path(tempfile.mkdtemp(prefix="hybridops-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own system user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            missing(
                "a 'postgres' user to run PostgreSQL as (as root)",
                "apt-get install postgresql (Debian package)",
            )
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        if as_owner:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    data, port = base / "data", closed_port()
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [*as_owner, initdb, "-D", str(data), "-U", user, *auth, "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        server = subprocess.Popen(
            [*as_owner, postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(base)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"postgresql://{user}:{password or 'unused'}@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:  # an open port is not enough: the server refuses logins while it starts up
            try:
                psycopg2.connect(url, connect_timeout=1).close()
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the throwaway PostgreSQL did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)
