"""Commands on the local pipeline and its data: ``run``, ``lineage``, ``quarantine``.

Plain functions, registered on the ``hybridops`` app (in the order of its help) by :mod:`hybridops.cli.app`;
heavy libraries are imported inside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hybridops.errors import UsageError

MonthsOption = Annotated[
    str | None,
    typer.Option(
        "--months",
        help="Inclusive range of monthly partitions, START:END (e.g. 2013-01:2013-03), START: or :END, "
        "or one month. "
        "Default: every month of 2013.",
    ),
]


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
    if json_path:
        from hybridops.cli.preflight import require_writable_file

        require_writable_file(json_path, "--json")

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


def lineage(
    model: Annotated[
        str, typer.Option("--model", help="name@alias, name/version or name (its champion).")
    ] = "flight_delay@champion",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a tree.")] = False,
) -> None:
    """Print the chain from raw files and partitions to features, training set, run, model and predictions."""
    import json

    from hybridops.cli.preflight import require_tracking_server
    from hybridops.settings import load_settings

    settings = load_settings()
    require_tracking_server(settings)
    from hybridops.cli.render import print_lineage
    from hybridops.lineage import model_lineage

    chain = model_lineage(settings, model)
    if as_json:
        typer.echo(json.dumps(chain, indent=2, default=str))
        return

    print_lineage(chain)


def quarantine(
    table: Annotated[
        str | None, typer.Option("--table", help="Source table: flights, weather, planes...")
    ] = None,
    month: Annotated[
        str | None, typer.Option("--month", help="Month YYYY-MM (static: dimension tables).")
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Text the check or the reason contains (e.g. distance).")
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Dagster run id, or its first characters.")] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table (terminal), csv or json (with each rejected record).")
    ] = "table",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write csv/json to this file (default: stdout).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows shown in the table format.")] = 50,
) -> None:
    """List or export the rows that ingestion set aside: table, file, line, check, reason, run."""
    from hybridops.quality.quarantine import LISTED_COLUMNS, read_quarantine
    from hybridops.settings import load_settings
    from hybridops.warehouse.db import connect

    if output_format not in ("table", "csv", "json"):
        raise UsageError(f"--format must be table, csv or json, not {output_format!r}")
    if month is not None and month != "static":
        from hybridops.months import check_month

        # a month that cannot exist (2013-13) filtered silently to nothing, as if nothing were quarantined
        month = check_month(month, "--month")
    settings = load_settings()
    if not settings.warehouse_db.exists():
        raise UsageError(f"no warehouse at {settings.warehouse_db}: run `hybridops run` first")
    with connect(settings.warehouse_db, read_only=True) as con:
        rows = read_quarantine(con, table=table, month=month, reason=reason, run=run)
    if output_format == "table":
        from hybridops.cli.render import print_frame

        shown = rows.loc[:, list(LISTED_COLUMNS)].head(limit)
        print_frame(f"quarantined rows ({len(rows):,}; {settings.warehouse_db}, table quarantine)", shown)
        if len(rows) > limit:
            typer.echo(
                f"{len(rows) - limit:,} more: --limit, or export them with --format csv|json --out FILE"
            )
        return
    if output_format == "csv":
        text = rows.to_csv(index=False)
    else:
        text = rows.to_json(orient="records", date_format="iso", indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        typer.echo(f"{len(rows):,} quarantined rows written to {out}", err=True)
