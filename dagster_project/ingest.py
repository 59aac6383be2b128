"""Ingest: source files into the immutable landing zone, then parsed into typed staging tables."""

import dagster as dg
import pandas as pd

from dagster_project.months import MONTHLY, months_of, observe_months
from dagster_project.resources import HybridopsResource
from hybridops.errors import HybridopsError
from hybridops.ingest.landing import land_file, record_landing
from hybridops.ingest.parse import parse_table
from hybridops.ingest.sources import resolve_source_dir, source_file
from hybridops.warehouse.db import connect, replace_rows

MONTHLY_TABLES = ("flights", "weather")
DIMENSION_TABLES = ("planes", "airlines", "airports")


def _raw_asset(table: str, partitioned: bool) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"raw_{table}",
        group_name="ingest",
        owners=["team:data"],
        kinds={"csv", "duckdb"},
        **(MONTHLY if partitioned else {}),
        description=(
            f"The {table} source file landed byte for byte (content-addressed, never overwritten) and "
            f"parsed into typed rows{' per month' if partitioned else ''} (staging table stg_{table})."
        ),
    )
    def _raw(context: dg.AssetExecutionContext, hybridops: HybridopsResource) -> dg.MaterializeResult:
        settings = hybridops.settings()
        months: list[str | None] = list(months_of(context)) if partitioned else [None]
        try:
            path = source_file(resolve_source_dir(settings), table)
        except HybridopsError as exc:
            # A missing or unreadable file is not a crash of this step: the quality step reports it as
            # its failed blocking file check (with the file named), so the blocking-check alert fires.
            context.log.error(str(exc))
            return dg.MaterializeResult(metadata={"critical_problems": str(exc), "rows_read": 0})
        # Not caught: a source that turns unreadable mid-copy (source_file read its first byte) fails the
        # step with the file named; the quality step must not go on to validate an older landed copy.
        landed = land_file(path, table, settings.landing_dir)
        # The quality step parses the landed file again (cached per content hash in this process): the
        # landing zone, not an IO manager, carries the batch, so one step can cover many months.
        parsed = {month: parse_table(landed, month) for month in months}
        usable = [
            result.frame for result in parsed.values() if not result.critical and len(result.frame.columns)
        ]
        with connect(settings) as con:
            record_landing(con, landed, context.run.run_id)
            if usable:
                where = (
                    {"month_key": [m for m, r in parsed.items() if not r.critical]} if partitioned else None
                )
                replace_rows(con, f"stg_{table}", pd.concat(usable, ignore_index=True), where)
        observe_months(
            context,
            {m: {"rows_read": r.rows_read, "rows_untyped": len(r.rejects)} for m, r in parsed.items() if m},
        )
        # A problem of the whole file is every month's: said once.
        critical = list(dict.fromkeys(problem for result in parsed.values() for problem in result.critical))
        ignored = list(dict.fromkeys(c for result in parsed.values() for c in result.ignored_columns))
        if ignored:
            context.log.warning(
                f"{path}: column(s) {', '.join(ignored)} are not columns of {table} and were not read "
                f"(the landed copy {landed.landed_path} keeps them)"
            )
        return dg.MaterializeResult(
            metadata={
                "rows_read": sum(result.rows_read for result in parsed.values()),
                "rows_untyped": sum(len(result.rejects) for result in parsed.values()),
                "critical_problems": "\n".join(critical) or "none",
                "ignored_columns": ", ".join(ignored) or "none",
                "source_file": str(path),
                # When the source last changed (its mtime as read): the stale-source alert's clock.
                "source_modified_at": dg.MetadataValue.timestamp(path.stat().st_mtime),
                "landed_file": dg.MetadataValue.path(str(landed.landed_path)),
                "sha256": landed.sha256,
            },
        )

    return _raw


raw_assets = [_raw_asset(t, True) for t in MONTHLY_TABLES] + [_raw_asset(t, False) for t in DIMENSION_TABLES]
