"""The migrated, empty MLflow SQLite database that a home's local tracking store starts as.

MLflow creates a new SQLite tracking store by running its ~50 alembic migrations, 3-4 s that every fresh
``HYBRIDOPS_HOME`` paid again. The result is the same every time for one MLflow release, so it is built
once per machine into a per-user cache (``$XDG_CACHE_HOME/hybridops``, else ``~/.cache/hybridops``) and a
fresh home's ``mlflow.db`` starts as a copy of it (``make setup`` warms it: ``python -m
hybridops.registry.store_template``).

The template is keyed by the MLflow version and the alembic head revision of its migrations, so an MLflow
upgrade (or a development build that adds a migration without a version bump) builds a new one instead of
handing MLflow a schema it would refuse. It holds exactly what ``mlflow.store.db.utils._initialize_tables``
makes, the step ``SqlAlchemyStore.__init__`` runs on an empty database: schema, revision stamp and the
migrations' seed rows (the ``default`` workspace). What the store writes on every open, the Default
experiment (id 0) with an artifact root of the opening process, is left to MLflow when it opens the copy,
so a copied store and one MLflow made itself end up the same (up to the order of the ``runs`` table's
CHECK constraints in its DDL, which MLflow's own migrations vary with the hash seed).

Any failure (a read-only or missing cache folder, a full disk) falls back to MLflow's own creation.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from hybridops.settings import Settings

_logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The per-user cache folder of hybridops (``$XDG_CACHE_HOME/hybridops`` or ``~/.cache/hybridops``)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative paths are invalid and to be ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "hybridops"


@functools.cache
def _head_revision() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    # Read from MLflow's migration scripts (~30 ms; MLflow parses them on every store open too), not from a
    # built database: keying by the scripts is what makes a stale template unreachable.
    return str(_get_latest_schema_revision())


def schema_key() -> str:
    """``<mlflow version>-<alembic head revision>``: what the template's content depends on."""
    import mlflow

    return f"{mlflow.__version__}-{_head_revision()}"


def template_path() -> Path:
    """Where the template of the installed MLflow lives (it may not exist yet)."""
    return cache_dir() / f"mlflow-{schema_key()}.db"


def ensure_template() -> Path:
    """The template's path, building the template first if it is missing.

    Two processes may build at once: each builds under a name of its own and renames it into place, so a
    reader only ever sees a complete template.

    Raises:
        OSError: the cache folder cannot be created or written.
        RuntimeError: the migrated database is not at MLflow's head revision or holds an experiment.
    """
    target = template_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = _staging_name(target)
    try:
        _build(staged)
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
        Path(f"{staged}-journal").unlink(missing_ok=True)
    return target


def seed_database(database: Path) -> bool:
    """Start a missing SQLite tracking store at ``database`` as a copy of the template.

    An existing file is never replaced: the copy is hard-linked into place, which fails if another process
    created the database meanwhile. Without a template (cache unusable, build failed) or without hard links
    (some network file systems) nothing is copied and MLflow creates the store itself when it opens it.

    Returns:
        Whether ``database`` is now a copy of the template.
    """
    if database.exists():
        return False
    try:
        template = ensure_template()
    except Exception:  # falling back to MLflow's own creation is always correct, only slower
        _logger.debug("No MLflow store template; MLflow creates %s itself", database, exc_info=True)
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    staged = _staging_name(database)
    try:
        shutil.copyfile(template, staged)
        os.link(staged, database)
    except FileExistsError:
        return False
    except OSError:
        _logger.debug("Could not copy the MLflow store template to %s", database, exc_info=True)
        return False
    finally:
        staged.unlink(missing_ok=True)
    return True


def ensure_local_store(settings: Settings) -> None:
    """Prepare the default SQLite tracking store of ``settings`` (no-op for a configured tracking URI).

    Creates its folder and, on a fresh home, seeds the database from the template. Call it before anything
    opens the store (``MlflowClient``, ``mlflow.set_tracking_uri`` and the fluent API).
    """
    if settings.mlflow.tracking_uri is not None:
        return
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    seed_database(settings.mlflow_dir / "mlflow.db")


def _staging_name(path: Path) -> Path:
    """A hidden name next to ``path``, unique per process and call (same folder, so renames are atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _build(path: Path) -> None:
    from mlflow.store.db import utils as db_utils

    engine = db_utils.create_sqlalchemy_engine(f"sqlite:///{path}")
    try:
        db_utils._initialize_tables(engine)
    finally:
        engine.dispose()
    with closing(sqlite3.connect(path)) as con:
        revisions = [row[0] for row in con.execute("SELECT version_num FROM alembic_version")]
        experiments = con.execute("SELECT count(*) FROM experiments").fetchone()[0]
    # Never publish a template MLflow would reject or that carries an experiment of the building process.
    if revisions != [_head_revision()] or experiments:
        raise RuntimeError(f"unexpected MLflow template: revisions {revisions}, {experiments} experiment(s)")


def main() -> None:
    """Build the template of the installed MLflow if it is missing and print where it is (``make setup``).

    Without a usable cache it says so and succeeds: every fresh home then lets MLflow create its store.
    """
    # MLflow logs each migration step at INFO; setup prints one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    try:
        path = ensure_template()
    except Exception as exc:
        print(f"MLflow store template not built ({exc}); fresh homes create their MLflow store themselves")
        return
    print(f"MLflow store template: {path}")


if __name__ == "__main__":
    main()
