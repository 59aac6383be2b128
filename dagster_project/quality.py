"""Quality: declared schemas per table, quarantine of bad rows, blocking checks that gate the batch."""

import dagster as dg
import pandas as pd

from dagster_project.ingest import DIMENSION_TABLES, MONTHLY_TABLES
from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from hybridops.ingest.parse import ParseResult
from hybridops.quality.quarantine import STATIC_MONTH_KEY, write_quarantine
from hybridops.quality.validate import CheckOutcome, References, declared_checks, validate_table
from hybridops.warehouse.db import connect, read_frame, replace_rows, table_exists

# Flights are checked against the dimensions; the dimensions only against themselves.
REFERENCES = {"flights": ("airlines", "airports", "planes")}


def _references(con, table: str) -> References:
    frames: dict[str, pd.DataFrame | None] = {}
    for dim in REFERENCES.get(table, ()):
        frames[dim] = read_frame(con, f'select * from "{dim}"') if table_exists(con, dim) else None
    return References.from_frames(frames.get("airlines"), frames.get("airports"), frames.get("planes"))


def _check_result(table: str, outcome: CheckOutcome | None, name: str) -> dg.AssetCheckResult:
    if outcome is None:
        # Dagster needs a result for every declared check; when the file itself is unusable the row
        # rules were never run, and saying so is more honest than a pass.
        return dg.AssetCheckResult(
            check_name=name,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"not evaluated: the {table} batch is blocked by file_readable_and_schema_valid",
        )
    return dg.AssetCheckResult(
        check_name=name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        description=outcome.message,
        metadata=dict(outcome.metadata),
    )


def _validated_asset(table: str, partitioned: bool) -> dg.AssetsDefinition:
    @dg.asset(
        name=table,
        ins={"parsed": dg.AssetIn(f"raw_{table}")},
        deps=list(REFERENCES.get(table, ())),
        group_name="quality",
        owners=["team:data"],
        kinds={"pandera", "duckdb"},
        partitions_def=monthly if partitioned else None,
        check_specs=[
            dg.AssetCheckSpec(name, asset=table, blocking=blocking)
            for name, blocking in declared_checks(table)
        ],
        description=(
            f"Validated {table}: rows that pass the declared schema. Bad rows go to the quarantine table "
            "with reason, file, line and run id; a blocking check failure keeps the last good version "
            "and stops everything downstream."
        ),
    )
    def _validated(context: dg.AssetExecutionContext, hybridops: HybridopsResource, parsed: ParseResult):
        settings = hybridops.settings()
        month_key = context.partition_key if partitioned else None
        with connect(settings.warehouse_db) as con:
            result = validate_table(
                table, parsed, _references(con, table), settings.quality, context.run.run_id
            )
            write_quarantine(con, table, month_key or STATIC_MONTH_KEY, result.quarantine)
            if not result.blocked:
                good = result.good.assign(_run_id=context.run.run_id)
                replace_rows(con, table, good, {"month_key": month_key} if month_key else None)
        yield dg.MaterializeResult(
            metadata={
                "rows_valid": len(result.good),
                "rows_quarantined": len(result.quarantine),
                "blocked": result.blocked,
                "dagster/row_count": len(result.good),
            }
        )
        outcomes = {outcome.name: outcome for outcome in result.checks}
        for name, _blocking in declared_checks(table):
            yield _check_result(table, outcomes.get(name), name)

    return _validated


validated_assets = [_validated_asset(t, True) for t in MONTHLY_TABLES] + [
    _validated_asset(t, False) for t in DIMENSION_TABLES
]
