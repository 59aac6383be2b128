"""Programs from outside Python that tests run (PostgreSQL, Redis, Prometheus, Alertmanager, Chromium...).

``require_tool`` finds one on PATH (PostgreSQL's server also in Debian's ``/usr/lib/postgresql/<version>/bin``).
Call it in a test or fixture, never at module level (a failure there would stop the whole collection). When it is missing the test is skipped on a developer's machine, but
FAILS when ``HYBRIDOPS_STRICT_TOOLS=1`` (as ``.ci/run`` sets): in CI a test that cannot run is a failure,
never a silent skip. Under strict mode ``conftest.py`` also fails the session if any test was skipped.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

STRICT_ENV = "HYBRIDOPS_STRICT_TOOLS"


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes"}


def missing(what: str, install: str) -> NoReturn:
    """Skip (fail under strict mode) because ``what`` is missing; ``install`` says how to get it."""
    message = f"{what} missing: {install}"
    if strict():
        pytest.fail(f"{message} ({STRICT_ENV}=1: a test that needs a missing tool fails)", pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class Tool:
    names: tuple[str, ...]  # the first found wins
    package: str  # the Debian package that provides it
    dirs: tuple[str, ...] = ()  # folders searched after PATH (glob patterns; the last match wins)


# Debian keeps PostgreSQL's server binaries under /usr/lib/postgresql/<version>/bin, off PATH.
_PG = ("/usr/lib/postgresql/*/bin",)
# Every program the tests run; .ci/run installs each package and checks each name (tests/test_tools.py).
TOOLS: dict[str, Tool] = {
    "chromium": Tool(("chromium",), "chromium"),
    "redis-server": Tool(("redis-server",), "redis-server"),
    "redis-cli": Tool(("redis-cli",), "redis-tools"),
    "initdb": Tool(("initdb",), "postgresql", _PG),
    "postgres": Tool(("postgres",), "postgresql", _PG),
    "psql": Tool(("psql",), "postgresql-client"),
    "pg_isready": Tool(("pg_isready",), "postgresql-client"),
    "prometheus": Tool(("prometheus",), "prometheus"),
    "promtool": Tool(("promtool",), "prometheus"),
    "alertmanager": Tool(("prometheus-alertmanager", "alertmanager"), "prometheus-alertmanager"),
    "amtool": Tool(("amtool",), "prometheus-alertmanager"),
}


def find_tool(name: str) -> str | None:
    """The path of tool ``name`` (a key of ``TOOLS``), or None."""
    tool = TOOLS[name]
    for candidate in tool.names:
        found = shutil.which(candidate)
        if found:
            return found
    for candidate in tool.names:
        for pattern in tool.dirs:
            matches = sorted(Path("/").glob(f"{pattern.lstrip('/')}/{candidate}"))
            if matches:
                return str(matches[-1])
    return None


def require_tool(name: str) -> str:
    """The path of tool ``name`` (a key of ``TOOLS``); skips the test when it is missing, fails it
    under ``HYBRIDOPS_STRICT_TOOLS=1``."""
    found = find_tool(name)
    if found is None:
        package = TOOLS[name].package
        missing(name, f"apt-get install {package} (Debian package)")
    return found


def main(argv: list[str]) -> int:
    """``--packages``: print the Debian packages of the missing tools (one line, space-separated);
    ``--check``: name every missing tool and its package on stderr, exit 1 if any is missing."""
    missing_tools = {name: tool.package for name, tool in TOOLS.items() if find_tool(name) is None}
    if argv == ["--packages"]:
        print(" ".join(sorted(set(missing_tools.values()))))
        return 0
    if argv == ["--check"]:
        for name, package in missing_tools.items():
            print(f"missing tool: {name} (Debian package {package})", file=sys.stderr)
        if not missing_tools:
            print(f"all {len(TOOLS)} tools the tests use are installed: {', '.join(TOOLS)}")
        return 1 if missing_tools else 0
    print("usage: python tests/tools.py --packages | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
