"""Benchmark: the whole pipeline, raw files to champion and scores, stage by stage.

Run: ``.venv/bin/python benchmarks/pipeline.py [--months 2013-01:2013-12] [--out docs/performance.md]``

Two measurements in the same run, each on a fresh state directory:

* **hybridops**: ``hybridops run`` as a user runs it (real Dagster runs on a local instance: one run for
  the consecutive months, checks, metadata, MLflow, Feast).
* **peer: direct calls**: the same hybridops functions for the data half called in a plain loop, no
  orchestrator: ingest, validate, SPC, warehouse, features (what a team would script without Dagster).
  Its total against the orchestrated data stages shows what the orchestration costs.

Prints one table (stage, seconds, rows/s, share) and appends it to ``--out`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hybridops.months import parse_month_range
from hybridops.orchestration.runner import run_pipeline
from hybridops.settings import Settings

console = Console()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def orchestrated(home: Path, months: list[str]):
    started = time.perf_counter()
    summary = run_pipeline(Settings(home=home), months)
    return summary, time.perf_counter() - started


def direct(home: Path, months: list[str]) -> dict[str, float]:
    """The data half with plain function calls (the peer)."""
    from hybridops.features.compute import build_feature_tables_months
    from hybridops.features.store import apply_definitions, feature_store, materialize_months
    from hybridops.ingest.landing import land_file
    from hybridops.ingest.parse import clear_cache, parse_table
    from hybridops.ingest.sources import resolve_source_dir, source_file
    from hybridops.quality.quarantine import STATIC_MONTH_KEY, write_quarantine
    from hybridops.quality.validate import References, validate_table
    from hybridops.spc.control import evaluate
    from hybridops.spc.metrics import FLIGHT_COLUMNS, WEATHER_COLUMNS, daily_metrics
    from hybridops.warehouse.conform import build_fct_flights_months
    from hybridops.warehouse.db import connect, read_frame, replace_rows

    clear_cache()
    settings = Settings(home=home)
    seconds = dict.fromkeys(("ingest", "quality", "warehouse", "features"), 0.0)
    src = resolve_source_dir(settings)

    def ingest(table: str, month: str | None):
        t0 = time.perf_counter()
        parsed = parse_table(land_file(source_file(src, table), table, settings.landing_dir), month)
        seconds["ingest"] += time.perf_counter() - t0
        return parsed

    with connect(settings.warehouse_db) as con:
        dims = {}
        for table in ("airlines", "airports", "planes"):
            parsed = ingest(table, None)
            t0 = time.perf_counter()
            result = validate_table(table, parsed, References(), settings.quality, "direct")
            write_quarantine(con, table, STATIC_MONTH_KEY, result.quarantine)
            replace_rows(con, table, result.good)
            dims[table] = result.good
            seconds["quality"] += time.perf_counter() - t0
        refs = References.from_frames(dims["airlines"], dims["airports"], dims["planes"])
        t0 = time.perf_counter()
        store = feature_store(settings)
        apply_definitions(store, settings)
        seconds["features"] += time.perf_counter() - t0
        for month in months:
            for table in ("flights", "weather"):
                parsed = ingest(table, month)
                t0 = time.perf_counter()
                result = validate_table(table, parsed, refs, settings.quality, "direct")
                write_quarantine(con, table, month, result.quarantine)
                replace_rows(con, table, result.good, {"month_key": month})
                seconds["quality"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            flights = read_frame(
                con, f"select {', '.join(FLIGHT_COLUMNS)} from flights where month_key = ?", [month]
            )
            weather = read_frame(
                con, f"select {', '.join(WEATHER_COLUMNS)} from weather where month_key = ?", [month]
            )
            replace_rows(con, "spc_metrics", daily_metrics(flights, weather, month), {"month_key": month})
            history = read_frame(con, "select * from spc_metrics where month_key <= ? order by day", [month])
            evaluate(history, month, settings.spc, "direct")
            seconds["quality"] += time.perf_counter() - t0
        # As the pipeline does: the conformed flights and the feature tables of the range at once.
        t0 = time.perf_counter()
        build_fct_flights_months(con, settings.parquet_dir, months)
        seconds["warehouse"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        build_feature_tables_months(con, settings.parquet_dir, months)
        seconds["features"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        materialize_months(store, months[0], months[-1])  # as the pipeline does: one window
        seconds["features"] += time.perf_counter() - t0
    return seconds


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> int:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", default="2013-01:2013-12")
    parser.add_argument("--out", type=Path, default=Path("docs/performance.md"))
    args = parser.parse_args()
    months = parse_month_range(args.months, "2013-01", "2013-12")
    root = Path(tempfile.mkdtemp(prefix="hybridops-bench-"))
    load_before = os.getloadavg()
    try:
        console.print(f"[bold]orchestrated[/] hybridops run {months[0]}..{months[-1]} …")
        summary, wall = orchestrated(root / "orchestrated", months)
        if summary.status != "success":
            console.print(f"[red]pipeline {summary.status}: {summary.problems}")
            return 1
        console.print("[bold]peer[/]: the data half with direct calls …")
        t0 = time.perf_counter()
        peer = direct(root / "direct", months)
        peer_wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rows_by_stage = {
        "ingest": summary.rows_ingested,
        "quality": summary.rows_ingested,
        "warehouse": summary.warehouse_rows,
        "features": summary.warehouse_rows,
        "training": summary.warehouse_rows,
        "inference": summary.warehouse_rows,
        "monitoring": summary.warehouse_rows,
    }
    table = Table(title=f"hybridops run {months[0]}..{months[-1]}: {wall:.1f} s wall")
    for column in ("stage", "hybridops s", "rows/s", "share", "peer (direct calls) s"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    lines = ["| stage | hybridops s | rows/s | share | peer (direct calls) s |", "|---|---|---|---|---|"]
    for stage, seconds in sorted(summary.stage_seconds.items(), key=lambda item: -item[1]):
        rows = rows_by_stage.get(stage)
        rate = f"{rows / seconds:,.0f}" if rows and seconds else "-"
        share = f"{seconds / wall:.0%}"
        peer_s = f"{peer[stage]:.2f}" if stage in peer else "-"
        table.add_row(stage, f"{seconds:.2f}", rate, share, peer_s)
        lines.append(f"| {stage} | {seconds:.2f} | {rate} | {share} | {peer_s} |")
    data_orchestrated = sum(summary.stage_seconds.get(s, 0.0) for s in peer)
    table.caption = (
        f"data stages: hybridops {data_orchestrated:.1f} s of step time vs direct calls {sum(peer.values()):.1f} s "
        f"({peer_wall:.1f} s wall); orchestration (imports, runs, event log) "
        f"{summary.stage_seconds.get('orchestration', 0.0) / wall:.0%} of the total"
    )
    console.print(table)
    console.print(table.caption)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as handle:
        handle.write(
            f"\n## Pipeline, {months[0]}..{months[-1]} ({time.strftime('%Y-%m-%d')})\n\n"
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/pipeline.py --months {args.months}`.\n"
            f"Rows ingested {summary.rows_ingested:,}; flights in the warehouse {summary.warehouse_rows:,}; "
            f"wall {wall:.1f} s. Load average (1, 5, 15 min) before: {_load(load_before)}; after: "
            f"{_load(os.getloadavg())} (a busy machine inflates every stage).\n\n"
            + "\n".join(lines)
            + f"\n\n{table.caption}.\n"
        )
    console.print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
