"""Commands on the Helm chart and the cluster: ``chart``, ``deploy``, ``status``, ``history``, ``rollback``,
``rehearse``.

``chart_app`` is the ``chart`` group; the others are plain functions, registered on the ``hybridops`` app by
:mod:`hybridops.cli.app`. Heavy libraries are imported inside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hybridops.cli.data import MonthsOption

chart_app = typer.Typer(
    help="The Helm chart, rendered and linted offline by the Helm engine.", no_args_is_help=True
)


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
    if json_path:
        from hybridops.cli.preflight import require_writable_file

        require_writable_file(json_path, "--json")

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
