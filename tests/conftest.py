"""Session fixtures: one real pipeline run on two months, shared by the end-to-end tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

E2E_MONTHS = ["2013-01", "2013-02"]


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
