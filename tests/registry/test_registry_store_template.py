"""The migrated MLflow store template, against real MLflow with the cache under tmp (``XDG_CACHE_HOME``).

MLflow's migrations take seconds, so two module fixtures run them once each: ``template_homes`` opens two
fresh homes on one cache (the template is built on the first), ``mlflow_made`` opens a home with an
unusable cache (MLflow creates the store itself, the reference the copies are compared with). A spy on
``_initialize_tables`` (the real function still runs) counts where migrations ran.

MLflow roots the Default experiment at ``./mlruns`` of the opening process, so each home is opened from
its own folder: a Default experiment pointing at another folder would have come with the copied file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import mlflow.store.model_registry.sqlalchemy_store as registry_store
import pytest
from mlflow.store.db import utils as db_utils

from hybridops.registry import store_template
from hybridops.registry.client import registry_client
from hybridops.settings import Settings


@dataclass(frozen=True)
class Opened:
    homes: list[Path]
    migrated: list[str]  # database files MLflow's migrations ran on, in order
    cache: Path
    template_stats: list[os.stat_result]  # of the template after each home was opened


def database(home: Path) -> Path:
    return Settings(home=home).mlflow_dir / "mlflow.db"


def template_file(cache: Path) -> Path:
    return cache / "hybridops" / f"mlflow-{store_template.schema_key()}.db"


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as con:
        return con.execute(sql).fetchall()


def schema(path: Path) -> dict[tuple[object, object], list[str]]:
    """Each object's DDL as sorted lines.

    MLflow's own migrations order a table's CHECK constraints by hash: the ``runs`` DDL of two stores it
    makes itself differs under different ``PYTHONHASHSEED`` values.
    """
    rows = query(path, "SELECT type, name, sql FROM sqlite_master")
    return {
        (kind, name): sorted(line.strip().rstrip(",") for line in str(sql).splitlines())
        for kind, name, sql in rows
    }


def open_homes(
    patch: pytest.MonkeyPatch, cache: Path, homes: list[Path], template: bool
) -> tuple[list[str], list[os.stat_result]]:
    """Open each home with ``registry_client`` from inside it; the migrated files and template stats."""
    patch.setenv("XDG_CACHE_HOME", str(cache))
    migrated: list[str] = []
    real = db_utils._initialize_tables

    def spy(engine: object) -> None:
        migrated.append(str(engine.url.database))  # type: ignore[attr-defined]
        real(engine)

    patch.setattr(db_utils, "_initialize_tables", spy)
    patch.setattr(registry_store, "_initialize_tables", spy)
    stats = []
    for home in homes:
        home.mkdir(parents=True)
        patch.chdir(home)
        registry_client(Settings(home=home)).search_experiments()
        if template:
            stats.append(store_template.template_path().stat())
    return migrated, stats


@pytest.fixture(scope="module")
def template_homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Opened]:
    root = tmp_path_factory.mktemp("template")
    homes = [root / "home-a", root / "home-b"]
    with pytest.MonkeyPatch.context() as patch:
        migrated, stats = open_homes(patch, root / "cache", homes, template=True)
        yield Opened(homes=homes, migrated=migrated, cache=root / "cache", template_stats=stats)


@pytest.fixture(scope="module")
def mlflow_made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Opened]:
    root = tmp_path_factory.mktemp("no-template")
    cache = root / "cache-is-a-file"
    cache.write_text("not a folder")
    with pytest.MonkeyPatch.context() as patch:
        migrated, _ = open_homes(patch, cache, [root / "home"], template=False)
        yield Opened(homes=[root / "home"], migrated=migrated, cache=cache, template_stats=[])


def test_template_is_built_once_and_reused(template_homes: Opened) -> None:
    first, second = template_homes.template_stats
    template = template_file(template_homes.cache)
    assert template.exists()
    # Migrations ran once, on a staging file in the cache, never on a home's database.
    assert len(template_homes.migrated) == 1
    assert Path(template_homes.migrated[0]).parent == template.parent
    assert (first.st_ino, first.st_mtime_ns) == (second.st_ino, second.st_mtime_ns)
    assert sorted(p.name for p in template.parent.iterdir()) == [template.name]  # no staging leftovers
    for home in template_homes.homes:
        assert database(home).stat().st_ino != first.st_ino  # a copy, not the template itself
        assert sorted(p.name for p in database(home).parent.iterdir()) == ["mlflow.db"]


def test_copied_store_has_the_schema_mlflow_makes(template_homes: Opened, mlflow_made: Opened) -> None:
    copied, reference = database(template_homes.homes[1]), database(mlflow_made.homes[0])
    revision = "SELECT version_num FROM alembic_version"
    assert query(copied, revision) == query(reference, revision) == [(store_template._head_revision(),)]
    assert schema(copied) == schema(reference)
    workspaces = "SELECT * FROM workspaces ORDER BY name"
    assert query(copied, workspaces) == query(reference, workspaces) != []


def test_default_experiment_belongs_to_the_opening_home(template_homes: Opened, mlflow_made: Opened) -> None:
    assert query(template_file(template_homes.cache), "SELECT * FROM experiments") == []
    locations = {}
    for home in [*template_homes.homes, *mlflow_made.homes]:
        rows = query(
            database(home), "SELECT name, artifact_location FROM experiments WHERE experiment_id = 0"
        )
        assert len(rows) == 1 and rows[0][0] == "Default"
        locations[home] = rows[0][1]
        assert Path(str(rows[0][1])) == Path(os.path.realpath(home)) / "mlruns" / "0"
    assert len(set(locations.values())) == 3


def test_registry_round_trip_on_a_copied_store(template_homes: Opened, mlflow_made: Opened) -> None:
    settings = Settings(home=template_homes.homes[1])
    client = registry_client(settings)
    experiment_id = client.create_experiment(
        "copied", artifact_location=settings.mlflow_artifacts_dir.as_uri()
    )
    # Ids continue as in a store MLflow made itself (no sequence state came with the template).
    reference = registry_client(Settings(home=mlflow_made.homes[0]))
    assert experiment_id == reference.create_experiment("reference") == "1"
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "auc", 0.75)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("copied_model")
    version = client.create_model_version(
        "copied_model", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias("copied_model", "champion", version.version)

    again = registry_client(settings)
    assert again.get_run(run.info.run_id).data.metrics == {"auc": 0.75}
    champion = again.get_model_version_by_alias("copied_model", "champion")
    assert (str(champion.version), champion.run_id) == ("1", run.info.run_id)


def test_existing_database_is_never_overwritten(
    template_homes: Opened, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(template_homes.cache))
    home = template_homes.homes[0]
    settings = Settings(home=home)
    registry_client(settings).create_experiment("kept")
    before = database(home).stat()
    registry_client(settings).search_experiments()
    after = database(home).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert query(database(home), "SELECT name FROM experiments WHERE name = 'kept'") == [("kept",)]

    existing = tmp_path / "mlflow" / "mlflow.db"
    existing.parent.mkdir()
    existing.write_bytes(b"someone else's database")
    assert store_template.seed_database(existing) is False
    assert existing.read_bytes() == b"someone else's database"


def test_database_created_meanwhile_is_kept(
    template_homes: Opened, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process creating the database between the check and the copy wins."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(template_homes.cache))
    target = tmp_path / "mlflow.db"
    real = store_template.ensure_template

    def racing() -> Path:
        target.write_bytes(b"created by another process")
        return real()

    monkeypatch.setattr(store_template, "ensure_template", racing)
    assert store_template.seed_database(target) is False
    assert target.read_bytes() == b"created by another process"
    assert [p.name for p in tmp_path.iterdir()] == ["mlflow.db"]


def test_unusable_cache_falls_back_to_mlflow(mlflow_made: Opened) -> None:
    (home,) = mlflow_made.homes
    assert mlflow_made.migrated == [str(database(home))]  # MLflow migrated the home's database itself
    assert mlflow_made.cache.read_text() == "not a folder"
    assert query(database(home), "SELECT version_num FROM alembic_version") == [
        (store_template._head_revision(),)
    ]
    assert query(database(home), "SELECT name FROM experiments WHERE experiment_id = 0") == [("Default",)]


def test_seed_without_a_cache_copies_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file" / "cache"))
    assert store_template.seed_database(tmp_path / "mlflow" / "mlflow.db") is False
    assert not (tmp_path / "mlflow").exists()


def test_cache_dir_follows_xdg_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert store_template.cache_dir() == tmp_path / "user" / ".cache" / "hybridops"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # invalid per the XDG spec: ignored
    assert store_template.cache_dir() == tmp_path / "user" / ".cache" / "hybridops"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store_template.cache_dir() == tmp_path / "xdg" / "hybridops"


def test_main_prints_where_the_template_is(
    template_homes: Opened, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(template_homes.cache))
    logger = logging.getLogger("mlflow.store.db.utils")
    level = logger.level
    try:
        store_template.main()
    finally:
        logger.setLevel(level)  # main quiets MLflow's migration log for the rest of its process
    assert capsys.readouterr().out == f"MLflow store template: {store_template.template_path()}\n"
