"""Session fixtures: one real pipeline run on two months, shared by the end-to-end tests."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

E2E_MONTHS = ["2013-01", "2013-02"]
_CACHE_KEY = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Per-user caches (the MLflow store template) in a folder of the session, never the user's own."""
    cache = tempfile.mkdtemp(prefix="hybridops-test-cache-")
    config.stash[_CACHE_KEY] = cache
    os.environ["XDG_CACHE_HOME"] = cache  # subprocesses (CLI, servers) inherit it


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
