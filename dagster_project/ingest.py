"""Ingest: source files into the immutable landing zone, then parsed into typed staging tables."""

import dagster as dg

from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from hybridops.errors import HybridopsError
from hybridops.ingest.landing import land_file, landing_record
from hybridops.ingest.parse import ParseResult, parse_table
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
        partitions_def=monthly if partitioned else None,
        description=(
            f"The {table} source file landed byte for byte (content-addressed, never overwritten) and "
            f"parsed into typed rows{' of one month' if partitioned else ''} (staging table stg_{table})."
        ),
    )
    def _raw(context: dg.AssetExecutionContext, hybridops: HybridopsResource) -> dg.Output[ParseResult]:
        settings = hybridops.settings()
        month_key = context.partition_key if partitioned else None
        try:
            path = source_file(resolve_source_dir(settings), table)
        except HybridopsError as exc:
            raise dg.Failure(description=str(exc)) from exc
        landed = land_file(path, table, settings.landing_dir)
        parsed = parse_table(landed, month_key)
        with connect(settings.warehouse_db) as con:
            replace_rows(
                con,
                "landing_files",
                landing_record(landed, context.run.run_id),
                {"table_name": table, "sha256": landed.sha256},
            )
            if not parsed.critical and len(parsed.frame.columns):
                where = {"month_key": month_key} if month_key else None
                replace_rows(con, f"stg_{table}", parsed.frame, where)
        return dg.Output(
            parsed,
            metadata={
                "rows_read": parsed.rows_read,
                "rows_untyped": len(parsed.rejects),
                "critical_problems": "\n".join(parsed.critical) or "none",
                "source_file": str(path),
                "landed_file": dg.MetadataValue.path(str(landed.landed_path)),
                "sha256": landed.sha256,
            },
        )

    return _raw


raw_assets = [_raw_asset(t, True) for t in MONTHLY_TABLES] + [_raw_asset(t, False) for t in DIMENSION_TABLES]
