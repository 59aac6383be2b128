"""The ``hybridops`` command line.

Heavy libraries (Dagster, Feast, MLflow, pandas) are imported inside the commands, never at module
import, so ``hybridops --help`` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hybridops.errors import HybridopsError, UsageError

app = typer.Typer(
    name="hybridops",
    help="DataOps and MLOps as one system: run the hybrid pipeline, open the UIs, operate the platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

MonthsOption = Annotated[
    str | None,
    typer.Option(
        "--months",
        help="Inclusive range of monthly partitions, START:END (e.g. 2013-01:2013-03) or one month. "
        "Default: every month of 2013.",
    ),
]


@app.command()
def run(
    months: MonthsOption = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the run summary as JSON to this path.")
    ] = None,
) -> None:
    """Run the hybrid pipeline (ingest, validate, SPC, warehouse, report, features) on embedded defaults."""
    from hybridops.months import parse_month_range
    from hybridops.settings import load_settings

    settings = load_settings()
    keys = parse_month_range(months, settings.first_month, settings.last_month)

    from hybridops.cli.render import print_summary, progress_reporter
    from hybridops.orchestration.runner import run_pipeline

    with progress_reporter() as progress:
        summary = run_pipeline(settings, keys, progress=progress)
    print_summary(summary)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(summary.model_dump_json(indent=2))
        typer.echo(f"summary written to {json_path}")
    if summary.status != "success":
        raise typer.Exit(code=1)


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000,
) -> None:
    """Open the Dagster UI on the same instance that ``hybridops run`` uses."""
    import os

    from hybridops.orchestration.instance import webserver_command
    from hybridops.settings import load_settings

    settings = load_settings()
    command, env = webserver_command(settings, host=host, port=port)
    typer.echo(f"Dagster UI on http://{host}:{port} (instance: {settings.dagster_home}); Ctrl-C stops it")
    os.execvpe(command[0], command, {**os.environ, **env})


def main() -> None:
    """Entry point: usage errors and expected failures print one line, never a traceback."""
    try:
        # Without standalone mode, click returns the code of a typer.Exit instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Abort:
        typer.echo("hybridops: aborted", err=True)
        sys.exit(130)
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
    except UsageError as exc:
        typer.echo(f"hybridops: error: {exc}", err=True)
        sys.exit(2)
    except HybridopsError as exc:
        typer.echo(f"hybridops: {exc}", err=True)
        sys.exit(1)
