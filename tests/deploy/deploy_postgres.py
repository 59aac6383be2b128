"""A throwaway PostgreSQL server on a loopback port, for the chart tests that run real clients against the
storage the chart deploys (``test_deploy_dagster_status``, ``test_deploy_runtime``).

The server is the rehearsal's (:func:`hybridops.rehearsal.postgres.throwaway_postgres`); a machine without
its programs skips the test (fails it under ``HYBRIDOPS_STRICT_TOOLS=1``, see ``tests/tools.py``). A module with a unique name (not conftest) so test
modules import it unambiguously.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from tools import missing, require_tool

from hybridops.rehearsal import postgres
from hybridops.rehearsal.kubelet import closed_port
from hybridops.rehearsal.postgres import pg_binary

__all__ = ["closed_port", "pg_binary", "throwaway_postgres"]


@contextmanager
def throwaway_postgres(user: str = "hybridops", password: str | None = None) -> Iterator[str]:
    """``postgresql://user:password@127.0.0.1:port/postgres`` of a fresh server (see the rehearsal's)."""
    require_tool("initdb")
    require_tool("postgres")
    with ExitStack() as stack:
        try:
            url = stack.enter_context(postgres.throwaway_postgres(user, password))
        except postgres.MissingProgram as exc:
            missing(str(exc), "apt-get install postgresql (Debian package)")
        yield url
