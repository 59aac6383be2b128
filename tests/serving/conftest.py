"""Fixtures of tests/serving; the helpers live in serving_support (importable by name)."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest
from serving_support import World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    saved = mlflow.get_tracking_uri()
    yield build_world(tmp_path_factory.mktemp("serving") / "home")
    mlflow.set_tracking_uri(saved)
