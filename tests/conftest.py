"""Session fixtures (one real pipeline run on two months, shared by the end-to-end tests), and the strict
mode of CI: under ``HYBRIDOPS_STRICT_TOOLS=1`` a skipped test fails the session (see tests/tools.py)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools import STRICT_ENV, strict

from hybridops.processes import wait_passively

E2E_MONTHS = ["2013-01", "2013-02"]
_CACHE_KEY = pytest.StashKey[str]()
_SKIPS: list[tuple[str, str]] = []  # (node id, reason) of every skip in this session
# Opt-in groups, deselected (not skipped) unless asked for with `pytest -m <marker>`: tests that need a real
# Kubernetes cluster (KUBECONFIG; none can run on the project's machines, which have no control plane), and
# the slow group CI runs after `make test` (`make test-slow`: the whole-release rehearsal, concurrent pipeline
# runs and registry races, pipeline runs per fault or defect, runs by automation alone; tens of minutes on two
# cores).
OPT_IN = ("real_cluster", "rehearsal", "slow")


def pytest_configure(config: pytest.Config) -> None:
    """Per-user caches (the MLflow store template) in a folder of the session, never the user's own."""
    cache = tempfile.mkdtemp(prefix="hybridops-test-cache-")
    config.stash[_CACHE_KEY] = cache
    os.environ["XDG_CACHE_HOME"] = cache  # subprocesses (CLI, servers) inherit it
    wait_passively()  # as the platform's entry points do, before a test module imports LightGBM
    _SKIPS.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = config.option.markexpr or ""
    held = [marker for marker in OPT_IN if marker not in asked]
    deselected = [item for item in items if any(item.get_closest_marker(marker) for marker in held)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def _record_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPS.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_skip(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under strict mode, a skipped test fails the run: in CI a test that cannot run does not exist."""
    if strict() and _SKIPS and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if strict() and _SKIPS:
        terminalreporter.section(f"{len(_SKIPS)} skipped under {STRICT_ENV}=1: the run fails", red=True)
        for nodeid, reason in _SKIPS:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_CACHE_KEY, ""), ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, object]]:
    """Run the real pipeline (real Dagster runs, real DuckDB, real Feast) on two months."""
    from hybridops.orchestration.runner import run_pipeline
    from hybridops.settings import Settings

    home = tmp_path_factory.mktemp("e2e-home")
    saved = {key: os.environ.get(key) for key in ("DAGSTER_HOME", "HYBRIDOPS_HOME")}
    settings = Settings(home=home)
    summary = run_pipeline(settings, E2E_MONTHS)
    yield home, summary
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
