"""The Dagster instance under ``HYBRIDOPS_HOME`` shared by ``hybridops run`` and ``hybridops ui``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hybridops.files import write_atomically
from hybridops.settings import OrchestrationSettings, Settings

CODE_LOCATION_MODULE = "dagster_project.definitions"

_MANAGED = "# Written by hybridops; delete this line to keep your own edits."
_STORAGE = "hybridops.orchestration.storage"
FREE_SLOTS_AFTER_RUN_END_SECONDS = 5

# Telemetry as Settings.telemetry says (off by default, hybridops.telemetry); no "Join the Dagster community"
# dialog on the UI's first visit (Dagster's `nux` setting); Dagster's SQLite layout under the instance folder,
# through storages that keep their connections open and create their files whole when several processes
# start at once (see hybridops.orchestration.storage). The code location's pools (`training`,
# `online_store`) take one step at a time: one training, one writer of the online store (the only pools it
# declares, so the default limit is theirs). Run monitoring and run retries as Settings.orchestration says
# (see _run_resilience).
_DAGSTER_YAML = """\
{managed}
telemetry:
  enabled: {telemetry}
nux:
  enabled: false
{resilience}run_storage:
  module: {storage}
  class: LocalRunStorage
  config:
    base_dir: {home}/history
event_log_storage:
  module: {storage}
  class: LocalEventLogStorage
  config:
    base_dir: {home}/history/runs
schedule_storage:
  module: {storage}
  class: LocalScheduleStorage
  config:
    base_dir: {home}/schedules
concurrency:
  pools:
    default_limit: 1
"""


# What earlier releases wrote: Dagster's default storages over the same files.
_EARLIER_DAGSTER_YAML = "telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: false\n"


def _run_resilience(orchestration: OrchestrationSettings) -> str:
    """``run_monitoring`` and ``run_retries`` of the instance.

    With the local run launcher a run worker is a process of the code server that launched it; when the
    worker dies (SIGKILL, out of memory) that code server marks the run failed within a second, and the
    daemon's run retries launch it again from the failed step (``dagster/retry_strategy`` FROM_FAILURE,
    Dagster's default): steps that succeeded are not run again. Run monitoring adds what the launcher
    cannot see: a run stuck starting (``start_timeout_seconds``) or running past ``max_runtime_seconds``.
    Only runs that failed without a step failing are retried whole (``retry_on_asset_or_op_failure``
    false): a failed step has its own retries for transient errors, and a data error would fail again.
    """
    lines = []
    if orchestration.run_monitoring:
        lines += [
            "run_monitoring:",
            "  enabled: true",
            f"  start_timeout_seconds: {orchestration.run_start_timeout_seconds}",
            f"  poll_interval_seconds: {orchestration.run_monitoring_interval_seconds}",
            f"  max_runtime_seconds: {orchestration.max_runtime_seconds}",
            # Resuming a run in place needs a launcher that can check its worker (Kubernetes): a retry
            # run from the failed step does the same here.
            "  max_resume_run_attempts: 0",
            # A run killed inside a pooled step (the online store's writer) would keep its slot forever and
            # block every later writer, its own retry included: freed once the run has ended.
            f"  free_slots_after_run_end_seconds: {FREE_SLOTS_AFTER_RUN_END_SECONDS}",
        ]
    else:
        lines += ["run_monitoring:", "  enabled: false"]
    if orchestration.run_retries:
        lines += [
            "run_retries:",
            "  enabled: true",
            f"  max_retries: {orchestration.run_retries}",
            "  retry_on_asset_or_op_failure: false",
        ]
    return "".join(f"{line}\n" for line in lines)


def dagster_yaml(
    home: Path, telemetry: bool = False, orchestration: OrchestrationSettings | None = None
) -> str:
    return _DAGSTER_YAML.format(
        managed=_MANAGED,
        storage=_STORAGE,
        home=home,
        telemetry="true" if telemetry else "false",
        resilience=_run_resilience(orchestration or OrchestrationSettings()),
    )


def prepare_dagster_home(settings: Settings) -> Path:
    """Create the instance folder and its ``dagster.yaml``; keep a file the user has taken over.

    Safe when several processes prepare the same fresh folder at once (run pods on one volume): the
    file is replaced whole, and every process writes the same text.
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = dagster_yaml(home.resolve(), settings.telemetry, settings.orchestration)
    current = config.read_text() if config.exists() else None
    # Rewritten while it is ours, so a moved state directory or a newer hybridops takes effect.
    if current in (None, _EARLIER_DAGSTER_YAML) or (current.startswith(_MANAGED) and current != wanted):
        write_atomically(config, wanted)
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


def initialize_storage(settings: Settings) -> None:
    """Create the instance's databases once, before several processes open them.

    The webserver and the daemon started side by side on a fresh home would each create Dagster's SQLite
    schemas at the same moment (two alembic heads stamped in one database, unusable afterwards).
    """
    import dagster as dg

    home = prepare_dagster_home(settings)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)  # touches the run storage; opening the instance created the others


def daemon_command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The ``dagster-daemon run`` command line (sensors, automation, run queue, backfills) on this instance."""
    exe = shutil.which("dagster-daemon") or str(Path(sys.executable).with_name("dagster-daemon"))
    return [exe, "run", "-m", CODE_LOCATION_MODULE], instance_env(settings)


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
