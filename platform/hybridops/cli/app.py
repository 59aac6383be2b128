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
def lineage(
    model: Annotated[
        str, typer.Option("--model", help="name@alias, name/version or name (its champion).")
    ] = "flight_delay@champion",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a tree.")] = False,
) -> None:
    """Print the chain from raw files and partitions to features, training set, run, model and predictions."""
    import json

    from hybridops.lineage import model_lineage
    from hybridops.settings import load_settings

    chain = model_lineage(load_settings(), model)
    if as_json:
        typer.echo(json.dumps(chain, indent=2, default=str))
        return
    from hybridops.cli.render import print_lineage

    print_lineage(chain)


@app.command()
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


model_app = typer.Typer(
    help="The model registry: versions, aliases, their history, rollback.", no_args_is_help=True
)
app.add_typer(model_app, name="model")


@model_app.command("list")
def model_list() -> None:
    """Registered versions with their aliases and holdout metrics."""
    from hybridops.cli.render import print_versions
    from hybridops.registry import registry_client
    from hybridops.settings import load_settings

    settings = load_settings()
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
    from hybridops.cli.render import print_frame
    from hybridops.registry import alias_history
    from hybridops.settings import load_settings

    print_frame("alias history", alias_history(load_settings()))


@model_app.command("promote")
def model_promote(
    version: Annotated[str, typer.Argument(help="Registered version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why; recorded with the alias change.")] = "manual promotion",
) -> None:
    """Make a version the champion by hand (bypasses the gate; the reason is recorded)."""
    from hybridops.registry import promote
    from hybridops.settings import load_settings

    settings = load_settings()
    old, new = promote(settings, version, reason, actor="cli")
    typer.echo(f"{settings.mlflow.model_name}: champion moved from version {old} to version {new} ({reason})")


@model_app.command("rollback")
def model_rollback(
    reason: Annotated[str, typer.Option(help="Why; recorded with the alias change.")] = "manual rollback",
) -> None:
    """Move `champion` back to the previous champion."""
    from hybridops.registry import rollback
    from hybridops.settings import load_settings

    settings = load_settings()
    old, new = rollback(settings, reason, actor="cli")
    typer.echo(
        f"{settings.mlflow.model_name}: champion moved from version {old} back to version {new} ({reason})"
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the inference service.")] = 8000,
) -> None:
    """Serve online predictions: Feast online features and the champion model in one hop."""
    from hybridops.serving.server import serve as run_server
    from hybridops.settings import load_settings

    settings = load_settings()
    typer.echo(
        f"inference service on http://{host}:{port} (POST /predict, /healthz, /readyz, /metrics, /docs)"
    )
    run_server(settings, host=host, port=port)


@app.command()
def exporter(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of /metrics.")] = 9464,
) -> None:
    """Serve Prometheus metrics of the whole platform (Dagster runs and checks, data quality, Feast, model)."""
    from hybridops.observability import serve_exporter
    from hybridops.settings import load_settings

    typer.echo(f"exporter on http://{host}:{port}/metrics; Ctrl-C stops it")
    serve_exporter(load_settings(), host=host, port=port)


@app.command()
def monitor(
    exporter_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the exporter it starts.")
    ] = 9464,
    inference_url: Annotated[
        str, typer.Option(help="Inference service to scrape (its /metrics); empty for none.")
    ] = "http://127.0.0.1:8000",
    prometheus_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the Prometheus it starts.")
    ] = 9090,
    interval: Annotated[str, typer.Option(help="Scrape and rule evaluation interval.")] = "15s",
) -> None:
    """Start the exporter and a real Prometheus (Debian package `prometheus`) with the platform's alert rules."""
    from hybridops.observability.monitor import monitor as run_monitor
    from hybridops.settings import load_settings

    run_monitor(
        load_settings(),
        exporter_port=exporter_port,
        inference_url=inference_url or None,
        prometheus_port=prometheus_port,
        interval=interval,
    )


chart_app = typer.Typer(
    help="The Helm chart, rendered and linted offline by the Helm engine.", no_args_is_help=True
)
app.add_typer(chart_app, name="chart")


@chart_app.command("render")
def chart_render(
    profile: Annotated[str, typer.Option(help="dataops, mlops or hybrid.")] = "hybrid",
    out: Annotated[Path, typer.Option(help="Folder for the manifests, one file per template.")] = Path(
        "rendered"
    ),
    values: Annotated[list[Path] | None, typer.Option("--values", "-f", help="Extra values files.")] = None,
    namespace: Annotated[str, typer.Option(help="Namespace of the release.")] = "hybridops",
) -> None:
    """Render the chart for a profile into one file per template."""
    from hybridops.deploy.chart import render_to_dir

    for path in values or []:
        if not path.is_file():
            raise typer.BadParameter(f"values file {path} does not exist", param_hint="--values")
    written = render_to_dir(profile, out, values_files=list(values or []), namespace=namespace)
    typer.echo(f"{len(written)} manifests for profile {profile!r} written to {out}")


@chart_app.command("lint")
def chart_lint() -> None:
    """Lint the chart strictly (as `helm lint --strict`)."""
    from hybridops.deploy.chart import lint

    findings = lint(strict=True)
    for finding in findings:
        typer.echo(f"[{finding.severity}] {finding.path}: {finding.message}")
    errors = [f for f in findings if f.severity == "error"]
    typer.echo(f"{len(findings)} finding(s), {len(errors)} error(s)")
    if errors:
        raise typer.Exit(code=1)


NamespaceOption = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the release.")]
ReleaseOption = Annotated[str, typer.Option("--release", help="Release name.")]
ContextOption = Annotated[str | None, typer.Option("--context", help="Kube context (default: current).")]
WaitOption = Annotated[
    float, typer.Option("--wait", help="Seconds to wait for Deployments/StatefulSets to become ready.")
]


@app.command()
def deploy(
    profile: Annotated[str, typer.Option(help="dataops, mlops or hybrid.")] = "hybrid",
    values: Annotated[list[Path] | None, typer.Option("--values", "-f", help="Extra values files.")] = None,
    namespace: NamespaceOption = "hybridops",
    release: ReleaseOption = "hybridops",
    wait: WaitOption = 300,
    context: ContextOption = None,
) -> None:
    """Install or upgrade the chart in the current kube context and wait for the rollouts."""
    for path in values or []:
        if not path.is_file():
            raise typer.BadParameter(f"values file {path} does not exist", param_hint="--values")
    from hybridops.deploy import cluster
    from hybridops.deploy.tables import print_deploy

    api = cluster.connect(context)
    report = cluster.deploy(api, profile, list(values or []), namespace, release, wait_seconds=wait)
    print_deploy(report, "deployed")
    if not report.ready:
        raise typer.Exit(code=1)


@app.command()
def status(
    namespace: NamespaceOption = "hybridops",
    release: ReleaseOption = "hybridops",
    context: ContextOption = None,
    runs: Annotated[int, typer.Option("--runs", min=1, max=1000, help="How many recent runs to show.")] = 10,
    dagster_postgres_url: Annotated[
        str | None,
        typer.Option(
            "--dagster-postgres-url",
            envvar="HYBRIDOPS_DAGSTER_POSTGRES_URL",
            help="Postgres URL of the cluster's Dagster instance (e.g. through kubectl port-forward).",
        ),
    ] = None,
    dagster_home: Annotated[
        Path | None,
        typer.Option(
            "--dagster-home",
            help="Folder with the dagster.yaml of the instance to read (default: the one under HYBRIDOPS_HOME).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as one JSON document.")] = False,
) -> None:
    """Deployments, pods, revisions of a release; then Dagster's last runs and daemon heartbeats.

    Exits 1 when the cluster is unreachable; the Dagster part is still shown (or why it is not).
    """
    import dataclasses
    import json

    from hybridops.deploy import cluster, dagster_status
    from hybridops.deploy.tables import print_dagster, print_status
    from hybridops.settings import load_settings

    kube: cluster.StatusReport | None = None
    kube_error = ""
    try:
        kube = cluster.status(cluster.connect(context), namespace, release)
    except cluster.ClusterUnavailable as exc:
        kube_error = str(exc)
    if kube_error and not as_json:
        typer.echo(f"hybridops: {kube_error}", err=True)
    elif kube is not None and not as_json:
        print_status(kube)

    home = dagster_home if dagster_home or dagster_postgres_url else load_settings().dagster_home
    dagster: dagster_status.DagsterReport | None = None
    dagster_error = ""
    try:
        dagster = dagster_status.read(home, dagster_postgres_url, limit=runs)
    except dagster_status.InstanceUnavailable as exc:
        dagster_error = str(exc)
    if as_json:
        document = {
            "cluster": dataclasses.asdict(kube) if kube else {"error": kube_error},
            "dagster": dataclasses.asdict(dagster) if dagster else {"error": dagster_error},
        }
        typer.echo(json.dumps(document, indent=2))
    elif dagster is not None:
        print_dagster(dagster)
    else:
        typer.echo(f"hybridops: {dagster_error}", err=True)
    if kube_error:
        raise typer.Exit(code=1)


@app.command()
def history(
    namespace: NamespaceOption = "hybridops",
    release: ReleaseOption = "hybridops",
    context: ContextOption = None,
) -> None:
    """Revisions of a release from Helm's records (as `helm history`; releases of helm and hybridops alike)."""
    from hybridops.deploy import cluster
    from hybridops.deploy.tables import print_revisions

    found = cluster.revisions(cluster.connect(context), namespace, release)
    if not found:
        typer.echo(f"hybridops: release {release} has no revisions in namespace {namespace}", err=True)
        raise typer.Exit(code=1)
    print_revisions(found)


@app.command()
def rollback(
    namespace: NamespaceOption = "hybridops",
    release: ReleaseOption = "hybridops",
    to_revision: Annotated[
        int | None, typer.Option("--to-revision", help="Revision to restore (default: the previous one).")
    ] = None,
    wait: WaitOption = 300,
    context: ContextOption = None,
) -> None:
    """Re-apply an earlier revision's manifest as a new revision (as `helm rollback`) and wait for the rollouts."""
    from hybridops.deploy import cluster
    from hybridops.deploy.tables import print_deploy

    api = cluster.connect(context)
    report = cluster.rollback(api, namespace, release, to_revision, wait_seconds=wait)
    print_deploy(report, "rolled back")
    if not report.ready:
        raise typer.Exit(code=1)


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default 3000 for Dagster, 5000 for MLflow).")
    ] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Open the MLflow UI (runs, registry) instead.")
    ] = False,
) -> None:
    """Open the Dagster UI with its daemon (or with --mlflow the MLflow UI) on the state of ``hybridops run``.

    The daemon runs the sensors, the automation, the run queue and the backfills launched from the UI, as
    `dagster dev` does; Ctrl-C stops the webserver and the daemon.
    """
    import os

    from hybridops.orchestration.instance import (
        daemon_command,
        initialize_storage,
        mlflow_ui_command,
        webserver_command,
    )
    from hybridops.orchestration.supervise import Child, supervise
    from hybridops.settings import load_settings

    settings = load_settings()
    if mlflow:
        port = port or 5000
        command, env = mlflow_ui_command(settings, host=host, port=port)
        typer.echo(
            f"MLflow UI on http://{host}:{port} (store: {settings.mlflow_tracking_uri}); Ctrl-C stops it"
        )
        os.execvpe(command[0], command, {**os.environ, **env})
    port = port or 3000
    initialize_storage(settings)
    web, web_env = webserver_command(settings, host=host, port=port)
    daemon, daemon_env = daemon_command(settings)
    automation = "on" if settings.orchestration.automation else "off (HYBRIDOPS_ORCHESTRATION__AUTOMATION)"
    typer.echo(
        f"Dagster UI on http://{host}:{port} with its daemon (instance: {settings.dagster_home}; "
        f"automation {automation}); Ctrl-C stops both"
    )
    code = supervise(
        [Child("dagster-webserver", web, web_env), Child("dagster-daemon", daemon, daemon_env)],
        echo=lambda line: typer.echo(line, err=True),
    )
    if code:
        raise typer.Exit(code=code)


@app.command()
def rehearse(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the rehearsal's summary as JSON to this path.")
    ] = None,
    months: MonthsOption = None,
    every: Annotated[
        int, typer.Option("--every", min=1, help="Keep every n-th flight of the source (1: all of it).")
    ] = 1,
    interval: Annotated[
        float, typer.Option("--interval", min=0, help="Least seconds between two monthly drops.")
    ] = 60.0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=60, help="Seconds the automation gets once the release is up.")
    ] = 7200.0,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the release running after the summary (Ctrl-C stops it).")
    ] = False,
    root: Annotated[
        Path | None, typer.Option("--root", help="Folder for the release's volumes and logs (kept).")
    ] = None,
) -> None:
    """Rehearse the cluster on this machine: the chart's hybrid release as local processes, the source
    dropped month by month, the daemon's automation alone carrying each month; prints a summary."""
    import json

    from hybridops.months import parse_month_range
    from hybridops.rehearsal.rehearse import Options
    from hybridops.rehearsal.rehearse import rehearse as run_rehearsal
    from hybridops.settings import FIRST_MONTH, LAST_MONTH

    keys = parse_month_range(months, FIRST_MONTH, LAST_MONTH)

    def progress(line: str) -> None:
        typer.echo(f"[rehearse] {line}")

    options = Options(months=keys, every=every, interval=interval, timeout=timeout, keep=keep, root=root)
    summary = run_rehearsal(options, progress=progress)
    text = summary.model_dump_json(indent=2)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text)
        typer.echo(f"summary written to {json_path}")
    brief = {k: v for k, v in json.loads(text).items() if k not in ("stages", "connections", "adaptations")}
    typer.echo(json.dumps(brief, indent=2))
    if not summary.ok:
        raise typer.Exit(code=1)


def _telemetry_enabled() -> bool:
    """``Settings.telemetry`` (HYBRIDOPS_TELEMETRY); off when the settings do not load (the command
    then says why)."""
    from pydantic import ValidationError

    from hybridops.settings import load_settings

    try:
        return load_settings().telemetry
    except ValidationError:
        return False


@app.callback()
def _before_every_command() -> None:
    # Runs before any command (not for --help, which stays fast): usage telemetry off for this process and
    # every process it starts, unless the user turned it on.
    import os

    from hybridops.telemetry import telemetry_env

    os.environ.update(telemetry_env(_telemetry_enabled()))


def main() -> None:
    """Entry point: usage errors and expected failures print one line, never a traceback."""
    import os
    import warnings

    from hybridops.processes import wait_passively

    # Libraries' deprecation notices are for their maintainers, not for people running the platform.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Library chatter (MLflow's store migrations) is not for the terminal; warnings still are. MLflow
    # configures its loggers from this variable when it is imported.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    wait_passively()
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
