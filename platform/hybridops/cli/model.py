"""``hybridops model``: the model registry's versions, aliases, their history and rollback.

Each command checks that the tracking server answers before it imports MLflow (seconds), so a server that is
down is named at once.
"""

from __future__ import annotations

from typing import Annotated

import typer

model_app = typer.Typer(
    help="The model registry: versions, aliases, their history, rollback.", no_args_is_help=True
)


@model_app.command("list")
def model_list() -> None:
    """Registered versions with their aliases and holdout metrics."""
    from hybridops.cli.preflight import require_tracking_server
    from hybridops.settings import load_settings

    settings = load_settings()
    require_tracking_server(settings)
    from hybridops.cli.render import print_versions
    from hybridops.registry import registry_client

    client = registry_client(settings)
    versions = client.search_model_versions(f"name = '{settings.mlflow.model_name}'")
    rows = []
    for found in sorted(versions, key=lambda v: int(v.version)):
        # search results carry no aliases; the version record does
        version = client.get_model_version(found.name, found.version)
        run = client.get_run(version.run_id) if version.run_id else None
        rows.append(
            {
                "version": str(version.version),
                "aliases": ", ".join(version.aliases) or "-",
                "auc": run.data.metrics.get("holdout_auc") if run else None,
                # the plain baseline trained on the same months, measured on the same holdout
                "baseline_auc": run.data.metrics.get("baseline.auc") if run else None,
                "holdout": run.data.tags.get("hybridops.holdout_month", "-") if run else "-",
                "trained_on": run.data.tags.get("hybridops.train_months", "-") if run else "-",
                "gate": version.tags.get("hybridops.gate_decision", "-"),
            }
        )
    print_versions(settings.mlflow.model_name, rows)


@model_app.command("history")
def model_history() -> None:
    """Every alias change with its reason."""
    from hybridops.cli.preflight import require_tracking_server
    from hybridops.settings import load_settings

    settings = load_settings()
    require_tracking_server(settings)
    from hybridops.cli.render import print_frame
    from hybridops.registry import alias_history

    print_frame("alias history", alias_history(settings))


@model_app.command("promote")
def model_promote(
    version: Annotated[str, typer.Argument(help="Registered version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why; recorded with the alias change.")] = "manual promotion",
) -> None:
    """Make a version the champion by hand (bypasses the gate; the reason is recorded)."""
    from hybridops.cli.preflight import require_tracking_server
    from hybridops.settings import load_settings

    settings = load_settings()
    require_tracking_server(settings)
    from hybridops.registry import promote

    old, new = promote(settings, version, reason, actor="cli")
    typer.echo(f"{settings.mlflow.model_name}: champion moved from version {old} to version {new} ({reason})")


@model_app.command("rollback")
def model_rollback(
    reason: Annotated[str, typer.Option(help="Why; recorded with the alias change.")] = "manual rollback",
) -> None:
    """Move `champion` back to the previous champion."""
    from hybridops.cli.preflight import require_tracking_server
    from hybridops.settings import load_settings

    settings = load_settings()
    require_tracking_server(settings)
    from hybridops.registry import rollback

    old, new = rollback(settings, reason, actor="cli")
    typer.echo(
        f"{settings.mlflow.model_name}: champion moved from version {old} back to version {new} ({reason})"
    )
