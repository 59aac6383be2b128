"""The ``hybridops`` command line.

Heavy libraries (Dagster, Feast, MLflow, pandas) are imported inside the commands, never at module
import, so ``hybridops --help`` answers at once.
"""

from __future__ import annotations

import sys

import typer

from hybridops.cli import cluster, data, services
from hybridops.cli.cluster import chart_app
from hybridops.cli.errors import EXIT_INTERRUPTED, report
from hybridops.cli.model import model_app

app = typer.Typer(
    name="hybridops",
    help="DataOps and MLOps as one system: run the hybrid pipeline, open the UIs, operate the platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# The commands live in modules by concern; registered here in the order `hybridops --help` lists them.
app.command()(data.run)
app.command()(data.lineage)
app.command()(data.quarantine)
app.command()(services.serve)
app.command()(services.exporter)
app.command()(services.monitor)
app.command()(cluster.deploy)
app.command()(cluster.status)
app.command()(cluster.history)
app.command()(cluster.rollback)
app.command()(services.ui)
app.command()(cluster.rehearse)
app.add_typer(model_app, name="model")
app.add_typer(chart_app, name="chart")


def _telemetry_enabled() -> bool:
    """``Settings.telemetry`` (HYBRIDOPS_TELEMETRY); off when the settings do not load (the command
    then says why)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from hybridops.settings import load_settings

    try:
        return load_settings().telemetry
    except (ValidationError, SettingsError):
        return False


@app.callback()
def _before_every_command() -> None:
    # Runs before any command (not for --help, which stays fast): usage telemetry off for this process and
    # every process it starts, unless the user turned it on.
    import os

    from hybridops.telemetry import telemetry_env

    os.environ.update(telemetry_env(_telemetry_enabled()))
    _warn_unknown_variables()


def _warn_unknown_variables() -> None:
    """A ``HYBRIDOPS_*`` variable that names no setting is ignored by the settings: say so on stderr, so a
    misspelling is seen before it costs a run (a warning, not a refusal: the environment is shared)."""
    from hybridops.settings import Settings
    from hybridops.settings.errors import unknown_variables

    for line in unknown_variables(Settings):
        typer.echo(f"hybridops: warning: {line}", err=True)


def main() -> None:
    """Entry point: usage errors and expected failures print one line, never a traceback
    (:func:`hybridops.cli.errors.report`)."""
    import os

    from hybridops.processes import quiet_library_warnings, wait_passively

    quiet_library_warnings()
    # Library chatter (MLflow's store migrations) is not for the terminal; warnings still are. MLflow
    # configures its loggers from this variable when it is imported.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow draws a progress bar per artifact download (a model's few small files, in milliseconds): the
    # service's own lines say which model it loaded.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    wait_passively()
    try:
        # Without standalone mode, click returns the code of a typer.Exit instead of exiting.
        code = app(standalone_mode=False)
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent exit 130: say so once
            code = report(KeyboardInterrupt())
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message())  # bare `hybridops`: the help is the answer
            sys.exit(0)
        # Typer's click-style usage errors: one line, plus where to read more.
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        typer.echo(f"hybridops: error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except (Exception, KeyboardInterrupt, typer.Abort) as exc:  # the one error path: see cli.errors
        sys.exit(report(exc))
