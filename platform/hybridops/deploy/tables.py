"""Rich tables for ``hybridops deploy``, ``status`` and ``rollback``."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hybridops.deploy.cluster import DeployReport, Revision, StatusReport, WorkloadStatus
from hybridops.deploy.dagster_status import DagsterReport

console = Console()


def _workload_table(title: str, workloads: list[WorkloadStatus]) -> Table:
    table = Table(title=title)
    for column in ("workload", "ready", "replicas", "why not"):
        table.add_column(column)
    for w in workloads:
        mark = "[green]ready[/]" if w.ready else "[red]not ready[/]"
        table.add_row(
            f"{w.kind}/{w.name}",
            mark,
            f"{w.ready_replicas}/{w.replicas}",
            escape("\n".join(w.reasons)) or "-",
        )
    return table


def print_deploy(report: DeployReport, action: str) -> None:
    title = f"{action} {report.release} revision {report.revision} in {report.namespace}"
    console.print(_workload_table(title, report.workloads))
    if report.pruned:
        console.print(f"deleted (no longer rendered): {', '.join(report.pruned)}")
    if report.hooks:
        console.print(f"hooks run: {', '.join(report.hooks)}")
    ready = sum(w.ready for w in report.workloads)
    verdict = "[green]all ready[/]" if report.ready else "[red]not all ready[/]"
    console.print(
        f"{report.applied} objects applied; {ready}/{len(report.workloads)} workloads ready: {verdict}"
    )


def print_status(report: StatusReport) -> None:
    console.print(_workload_table(f"{report.release} in {report.namespace}", report.workloads))
    pods = Table(title="pods")
    for column in ("pod", "phase", "ready", "restarts", "reason"):
        pods.add_column(column)
    for p in report.pods:
        pods.add_row(p.name, p.phase, "yes" if p.ready else "no", str(p.restarts), escape(p.reason) or "-")
    console.print(pods)
    if report.daemon is None:
        console.print("Dagster daemon: not deployed")
    else:
        state = "[green]healthy[/]" if report.daemon.ready else "[red]not ready[/]"
        console.print(f"Dagster daemon: {state} ({report.daemon.ready_replicas}/{report.daemon.replicas})")
    print_revisions(report.revisions)


def print_revisions(revisions: list[Revision]) -> None:
    table = Table(title="revisions (Helm's release records)")
    for column in ("revision", "status", "chart", "profile", "deployed at", "description"):
        table.add_column(column)
    for r in revisions:
        table.add_row(
            str(r.number), r.status, r.chart, r.profile or "-", r.deployed_at, escape(r.description)
        )
    console.print(table)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def print_dagster(report: DagsterReport) -> None:
    runs = Table(title=f"last Dagster runs ({report.instance})")
    for column in ("run", "job", "status", "started", "ended", "duration"):
        runs.add_column(column)
    for r in report.runs:
        color = {"SUCCESS": "green", "FAILURE": "red", "CANCELED": "red"}.get(r.status, "yellow")
        runs.add_row(
            r.run_id[:8],
            escape(r.job),
            f"[{color}]{r.status}[/]",
            r.started_at or "-",
            r.ended_at or "-",
            _seconds(r.duration_seconds),
        )
    console.print(runs if report.runs else "Dagster runs: none yet")
    daemons = Table(title="Dagster daemon heartbeats")
    for column in ("daemon", "required", "last heartbeat", "healthy", "errors"):
        daemons.add_column(column)
    for d in report.daemons:
        age = "never" if d.heartbeat_age_seconds is None else f"{_seconds(d.heartbeat_age_seconds)} ago"
        daemons.add_row(
            d.daemon_type,
            "yes" if d.required else "no",
            age,
            "[green]healthy[/]" if d.healthy else "[red]unhealthy[/]",
            str(d.errors),
        )
    console.print(daemons if report.daemons else "Dagster daemons: none required, no heartbeats")
