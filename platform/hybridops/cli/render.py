"""Terminal output of the CLI: progress while the pipeline runs and the summary tables after."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hybridops.orchestration.summary import RunSummary

console = Console(log_path=False)


class _RichProgress:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("starting", total=None)

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def step(self, label: str) -> None:
        self._progress.update(self._task, description=f"running {label}")

    def done(self, label: str, status: str = "success") -> None:
        self._progress.advance(self._task)
        mark = {"success": "[green]✓[/]", "blocked": "[yellow]■ blocked:[/]", "failed": "[red]✗ failed:[/]"}
        self._progress.console.log(f"{mark.get(status, status)} {label}")


@contextmanager
def progress_reporter() -> Iterator[_RichProgress]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        yield _RichProgress(progress)


def print_outcome(summary: RunSummary) -> None:
    """What blocked or failed, where, and what to do: printed before any table."""
    if summary.status == "success":
        return
    colour = "yellow" if summary.status == "blocked" else "red"
    months = _months(summary)
    console.print(f"[bold {colour}]{summary.status.upper()}[/]: hybridops run {months}")
    for problem in summary.problems:
        console.print(f"  [{colour}]■[/] {escape(problem)}")
    # Blocked means the data (a file, its header or rows); failed means a step's own error: a service it
    # could not reach, a permission, a bug.
    what = "the file, its header or rows" if summary.status == "blocked" else "the step's error"
    again = (
        f": hybridops run --months {summary.months[0]}"
        + (f":{summary.months[-1]}" if len(summary.months) > 1 else "")
        if summary.months
        else ""
    )
    console.print(f"  what to do: fix what is named above ({what}), then run again{again}")
    if summary.rows_quarantined:
        console.print(
            f"  rows set aside: {summary.rows_quarantined:,} (list them: {_quarantine_command(summary)})"
        )
    if summary.log_path:
        console.print(f"  Dagster's event log (errors, stack traces): {summary.log_path}")
    console.print()


def _months(summary: RunSummary) -> str:
    if not summary.months:
        return "-"
    return summary.months[0] if len(summary.months) == 1 else f"{summary.months[0]}..{summary.months[-1]}"


def _quarantine_command(summary: RunSummary) -> str:
    runs = f" --run {summary.run_ids[-1][:8]}" if len(summary.run_ids) == 1 else ""
    month = f" --month {summary.months[0]}" if len(summary.months) == 1 else ""
    return f"hybridops quarantine{month}{runs}"


def print_summary(summary: RunSummary) -> None:
    print_outcome(summary)
    colour = {"success": "green", "blocked": "yellow", "failed": "red"}[summary.status]
    table = Table(title=f"hybridops run {_months(summary)}: [{colour}]{summary.status}[/]", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("rows ingested", f"{summary.rows_ingested:,}")
    table.add_row("rows quarantined", f"{summary.rows_quarantined:,}")
    for name, count in sorted(summary.quarantined_by_table.items()):
        table.add_row(f"  {name}", f"{count:,}")
    table.add_row("warehouse rows (fct_flights)", f"{summary.warehouse_rows:,}")
    failed, skipped = summary.failed_checks, summary.not_evaluated_checks
    passed = len(summary.checks) - len(failed) - len(skipped)
    verdict = f"{passed} passed / {len(failed)} failed"
    table.add_row("asset checks", verdict + (f" / {len(skipped)} not evaluated" if skipped else ""))
    table.add_row("alarms (one per cause)", _alarm_counts(summary) or "none")
    table.add_row("features materialized (online rows)", f"{summary.features_materialized:,}")
    if summary.report_path:
        table.add_row("report", summary.report_path)
    table.add_row("total seconds", f"{summary.total_seconds:.1f}")
    console.print(table)
    _print_alarms(summary)
    _print_model(summary)

    stages = Table(title="seconds per stage")
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    for stage, seconds in sorted(summary.stage_seconds.items(), key=lambda item: -item[1]):
        stages.add_row(stage, f"{seconds:.2f}")
    console.print(stages)

    if failed:
        # One line per failing check across partitions: the full list is in --json output.
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for check in failed:
            grouped.setdefault((check.asset, check.name, check.severity), []).append(check.partition or "-")
        checks = Table(title="failing checks (all partitions and messages: --json)")
        checks.add_column("asset.check", no_wrap=True)
        checks.add_column("sev", no_wrap=True, min_width=5)
        checks.add_column("months", no_wrap=True, min_width=8)
        checks.add_column("latest message", overflow="ellipsis", no_wrap=True, max_width=30)
        latest: dict[tuple[str, str, str], str] = {(c.asset, c.name, c.severity): c.message for c in failed}
        for key, partitions in sorted(grouped.items(), key=lambda item: (item[0][2], item[0][0], item[0][1])):
            asset, name, severity = key
            checks.add_row(f"{asset}.{name}", severity, _span(partitions), latest[key])
        console.print(checks)
    if skipped:
        by_asset: dict[str, list[str]] = {}
        for check in skipped:
            names = by_asset.setdefault(check.asset, [])
            if check.name not in names:
                names.append(check.name)
        for asset, names in sorted(by_asset.items()):
            console.print(
                f"not evaluated (the {asset} batch was blocked before they ran): {', '.join(sorted(names))}"
            )
    if summary.rows_quarantined and summary.status == "success":
        console.print(
            f"quarantined rows: {_quarantine_command(summary)} (export: --format csv|json --out FILE)"
        )
    for note in summary.notes:
        console.print(f"note: {note}")
    if summary.status != "success" and summary.log_path:
        console.print(
            f"[{colour}]{summary.status}[/]: see the first lines above; event log: {summary.log_path}"
        )


def _alarm_counts(summary: RunSummary) -> str:
    counts = Counter((a.kind, a.severity) for a in summary.alarms)
    kinds = dict.fromkeys(kind for kind, _ in sorted(counts))
    return ", ".join(
        f"{kind} "
        + " + ".join(f"{counts[kind, sev]} {sev}" for sev in ("ERROR", "WARN") if counts[kind, sev])
        for kind in kinds
    )


_ALARMS_SHOWN = 12


def _print_alarms(summary: RunSummary) -> None:
    """The ERROR alarms (then WARN ones), the first few: the full list with evidence is in --json."""
    if not summary.alarms:
        return
    ordered = sorted(summary.alarms, key=lambda a: (a.severity != "ERROR", a.month, a.date or "", a.kind))
    shown = ordered[:_ALARMS_SHOWN]
    more = len(ordered) - len(shown)
    table = Table(
        title="alarms"
        + (f" (first {len(shown)} of {len(ordered)}; all with evidence: --json)" if more else "")
    )
    for column in ("kind", "sev", "when", "metric", "rule"):
        table.add_column(column, overflow="ellipsis", no_wrap=column != "metric", max_width=40)
    for alarm in shown:
        table.add_row(alarm.kind, alarm.severity, alarm.date or alarm.month, alarm.metric, alarm.rule)
    console.print(table)


def _span(partitions: list[str]) -> str:
    return partitions[0] if len(partitions) == 1 else f"{len(partitions)} months"


def print_lineage(chain: dict) -> None:
    from rich.tree import Tree

    model = chain["model"]
    aliases = ", ".join(model["aliases"]) or "no alias"
    tree = Tree(
        f"[bold]{model['name']} version {model['version']}[/] ({aliases}), sha256 {str(model['sha256'])[:12]}"
    )
    raw = tree.add("raw files (landing zone, byte for byte)")
    for f in chain["raw_files"]:
        raw.add(f"{f['table_name']}: {f['source_path']} sha256 {f['sha256'][:12]} -> {f['landed_path']}")
    parts = tree.add("partitions (fct_flights)")
    for p in chain["partitions"]:
        parts.add(f"{p['month_key']}: {p['flights']:,} flights")
    features = tree.add("features (Feast view: version)")
    for name, version in chain["features"]["views"].items():
        features.add(f"{name}: v{version} digest {chain['features']['digests'].get(name, '-')[:12]}")
    ts = chain["training_set"]
    tree.add(
        f"training set sha256 {str(ts['sha256'])[:12]}, {ts['rows']} rows, train {', '.join(ts['train_months'])}, "
        f"holdout {ts['holdout_month']}, cancelled excluded {ts['cancelled_excluded']}"
    )
    run = chain["mlflow_run"]
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(run["metrics"].items()) if k.startswith("holdout_"))
    tree.add(
        f"MLflow run {run['run_id']} (experiment {run['experiment_id']}, git {str(run['git_commit'])[:10]}, "
        f"Dagster run {run['dagster_run_id']}): {metrics}; trigger: {str(run['trigger'])[:100]}"
    )
    baseline = chain.get("baseline", {})
    if baseline.get("auc") is not None:
        margin = f", model margin {baseline['margin']:+.4f}" if baseline.get("margin") is not None else ""
        tree.add(f"plain baseline (no feature store) on the same holdout: AUC {baseline['auc']:.4f}{margin}")
    history = tree.add("alias changes")
    for event in chain["alias_history"]:
        history.add(
            f"{event['at'][:19]} {event['alias']}: {event['from_version']} -> {event['to_version']} ({event['reason'][:100]})"
        )
    predictions = tree.add("batch predictions")
    for p in chain["predictions"]:
        predictions.add(
            f"{p['month_key']}: {p['rows']:,} flights, mean probability {p['mean_probability']:.3f}"
        )
    console.print(tree)


def print_versions(name: str, rows: list[dict]) -> None:
    table = Table(title=f"registered model {name}")
    for column in ("version", "aliases", "auc", "baseline_auc", "holdout", "trained_on", "gate"):
        table.add_column(column, overflow="fold")
    for row in rows:
        auc = f"{row['auc']:.4f}" if row["auc"] is not None else "-"
        baseline = f"{row['baseline_auc']:.4f}" if row.get("baseline_auc") is not None else "-"
        table.add_row(
            row["version"],
            row["aliases"],
            auc,
            baseline,
            row["holdout"],
            row["trained_on"],
            row["gate"][:60],
        )
    console.print(table)


def print_frame(title: str, frame) -> None:
    if frame.empty:
        console.print(f"{title}: nothing recorded yet")
        return
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(str(value) for value in row))
    console.print(table)


def _print_model(summary: RunSummary) -> None:
    model = summary.model
    if model is None:
        return
    table = Table(title=f"model {model.name}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row(
        "champion", f"version {model.version}" if model.version else "none (no candidate passed the gate)"
    )
    table.add_row(
        "holdout metrics",
        ", ".join(f"{k} {v:.4f}" for k, v in model.metrics.items()) + f" ({model.holdout_month})",
    )
    if model.baseline is not None and "auc" in model.baseline.metrics:
        margin = (
            f", candidate margin {model.baseline.margin:+.4f}" if model.baseline.margin is not None else ""
        )
        table.add_row(
            "plain baseline", f"auc {model.baseline.metrics['auc']:.4f} ({model.holdout_month}){margin}"
        )
    verdict = "promoted" if model.promoted else "not promoted"
    table.add_row(f"candidate {model.candidate_version}", f"{verdict}: {model.reason}")
    drift = summary.drift
    for month, features in drift.drifted.items():
        auc = drift.live_auc.get(month)
        live = f"live AUC {auc:.4f}; " if auc is not None else ""
        table.add_row(
            f"drift {month}", f"{live}{len(features)} feature(s) drifted: {', '.join(features) or 'none'}"
        )
    for decision in summary.loop or []:
        line = ("triggered: " if decision.triggered else "idle: ") + decision.reason
        if decision.promoted is not None:
            verdict = "promoted" if decision.promoted else "not promoted"
            aucs = (
                f" (candidate AUC {decision.candidate_auc:.4f}, champion {decision.champion_auc:.4f})"
                if decision.candidate_auc is not None and decision.champion_auc is not None
                else ""
            )
            line += f"; retrained candidate {verdict}{aucs}"
        table.add_row("retraining loop" + (f" {decision.month}" if decision.month else ""), line)
    if drift.retrain_model is not None:
        retrained = drift.retrain_model
        verdict = "promoted" if retrained.promoted else "not promoted"
        table.add_row(f"retrained candidate {retrained.candidate_version}", f"{verdict}: {retrained.reason}")
    console.print(table)
