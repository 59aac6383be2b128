"""A real MLflow SQLite store under a temporary home and small real LightGBM boosters logged into it.

One store serves the whole registry suite (creating MLflow's schema takes seconds); each test registers
under its own model name, so tests do not see each other's versions, aliases or alias events. The tests
that need MLflow on PostgreSQL (the lock, the process race) get a throwaway server per module.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import mlflow
import pytest
from registry_support import Trained, settings_experiment, train_and_log
from tools import missing, require_tool

from hybridops.rehearsal import postgres
from hybridops.settings import MlflowSettings, Settings


@pytest.fixture(scope="session")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("registry-home")
    saved = mlflow.get_tracking_uri()
    settings_experiment(Settings(home=home))  # creates the SQLite schema once
    yield home
    mlflow.set_tracking_uri(saved)


_names = itertools.count(1)


@pytest.fixture
def make_settings(registry_home: Path) -> Callable[[], Settings]:
    """Settings on the shared store with a model name of their own."""

    def make() -> Settings:
        settings = Settings(home=registry_home, mlflow=MlflowSettings(model_name=f"model_{next(_names)}"))
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        return settings

    return make


@pytest.fixture(scope="session")
def boosters(registry_home: Path) -> dict[str, Trained]:
    """Three logged models, from good to poor on the shared holdout (registered again by each test)."""
    settings = Settings(home=registry_home)
    return {
        "good": train_and_log(settings, ["signal", "weak"], seed=1, rounds=30),
        "fair": train_and_log(settings, ["signal"], seed=2, rounds=5),
        "poor": train_and_log(settings, ["noise"], seed=3, rounds=10),
    }


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    """``postgresql://hybridops:unused@127.0.0.1:<port>/postgres`` of a throwaway server (the rehearsal's),
    one per test module; without its programs the test is skipped (failed under HYBRIDOPS_STRICT_TOOLS=1)."""
    require_tool("initdb")
    require_tool("postgres")
    with ExitStack() as stack:
        try:
            url = stack.enter_context(postgres.throwaway_postgres("hybridops"))
        except postgres.MissingProgram as exc:
            missing(str(exc), "apt-get install postgresql (Debian package)")
        yield url
