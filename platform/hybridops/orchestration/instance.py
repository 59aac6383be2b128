"""The Dagster instance under ``HYBRIDOPS_HOME`` shared by ``hybridops run`` and ``hybridops ui``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hybridops.settings import Settings

CODE_LOCATION_MODULE = "dagster_project.definitions"

# Local storage, no telemetry (machines here are offline), runs kept for the UI.
_DAGSTER_YAML = """\
telemetry:
  enabled: false
run_monitoring:
  enabled: false
"""


def prepare_dagster_home(settings: Settings) -> Path:
    """Create the instance folder and its ``dagster.yaml`` on first use."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML)
    return home


def instance_env(settings: Settings) -> dict[str, str]:
    """Environment that points Dagster and hybridops at the same state directory."""
    env = {"DAGSTER_HOME": str(prepare_dagster_home(settings)), "HYBRIDOPS_HOME": str(settings.home_dir)}
    if settings.source_dir:
        env["HYBRIDOPS_SOURCE_DIR"] = str(settings.source_dir.expanduser().resolve())
    return env


def webserver_command(settings: Settings, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The ``dagster-webserver`` command line serving the code location on this instance."""
    exe = shutil.which("dagster-webserver") or str(Path(sys.executable).with_name("dagster-webserver"))
    command = [exe, "-m", CODE_LOCATION_MODULE, "-h", host, "-p", str(port)]
    return command, instance_env(settings)


def mlflow_ui_command(settings: Settings, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow ui`` command line over the tracking store and artifacts under ``HYBRIDOPS_HOME``."""
    exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    command = [
        exe,
        "ui",
        "--backend-store-uri",
        settings.mlflow_tracking_uri,
        "--default-artifact-root",
        settings.mlflow_artifacts_dir.as_uri(),
        "--host",
        host,
        "--port",
        str(port),
    ]
    return command, instance_env(settings)
