"""Quality: declared schemas per table, quarantine of bad rows, blocking checks that gate the batch."""

import warnings

import dagster as dg
import pandas as pd

from dagster_project.ingest import DIMENSION_TABLES, MONTHLY_TABLES
from dagster_project.months import MONTHLY, months_of, observe_months
from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from hybridops.ingest.landing import latest_landing
from hybridops.ingest.parse import ParseResult, parse_table
from hybridops.quality.combine import combine_all
from hybridops.quality.quarantine import STATIC_MONTH_KEY, write_quarantine
from hybridops.quality.validate import (
    FILE_CHECK,
    CheckOutcome,
    References,
    declared_checks,
    validate_table,
)
from hybridops.warehouse.db import connect, read_frame, replace_rows, table_exists

# Partitioned checks are a preview feature of Dagster 1.13, used knowingly (see the check specs below).
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)
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
            description=f"not evaluated: {_blocked_why(table)}",
        )
    return dg.AssetCheckResult(
        check_name=name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        description=outcome.message,
        metadata=dict(outcome.metadata),
    )


def _blocked_why(table: str) -> str:
    return f"the {table} batch is blocked by {FILE_CHECK}"


def _parsed(con, table: str, month_key: str | None) -> ParseResult:
    """The month's rows as the ingest step parsed them, from the table's latest landed file."""
    landed = latest_landing(con, table)
    if landed is None:
        raise dg.Failure(description=f"no {table} file has been landed yet: materialize raw_{table} first")
    return parse_table(landed, month_key)


def _validated_asset(table: str, partitioned: bool) -> dg.AssetsDefinition:
    @dg.asset(
        name=table,
        deps=[f"raw_{table}", *REFERENCES.get(table, ())],
        group_name="quality",
        owners=["team:data"],
        kinds={"pandera", "duckdb"},
        **(MONTHLY if partitioned else {}),
        # A monthly table's checks are per month: a month whose blocking check failed stays blocked
        # for automation even after a later month passes (an unpartitioned check has one latest result).
        check_specs=[
            dg.AssetCheckSpec(
                name, asset=table, blocking=blocking, partitions_def=monthly if partitioned else None
            )
            for name, blocking in declared_checks(table)
        ],
        description=(
            f"Validated {table}: rows that pass the declared schema. Bad rows go to the quarantine table "
            "with reason, file, line and run id; a blocking check failure keeps the last good version "
            "and stops everything downstream."
        ),
    )
    def _validated(context: dg.AssetExecutionContext, hybridops: HybridopsResource):
        settings = hybridops.settings()
        months: list[str | None] = list(months_of(context)) if partitioned else [None]
        results = {}
        with connect(settings.warehouse_db) as con:
            references = _references(con, table)
            for month_key in months:
                result = validate_table(
                    table, _parsed(con, table, month_key), references, settings.quality, context.run.run_id
                )
                write_quarantine(con, table, month_key or STATIC_MONTH_KEY, result.quarantine)
                if not result.blocked:
                    good = result.good.assign(_run_id=context.run.run_id)
                    replace_rows(con, table, good, {"month_key": month_key} if month_key else None)
                results[month_key or STATIC_MONTH_KEY] = result
        observe_months(
            context,
            {
                month: {
                    "rows_valid": len(r.good),
                    "rows_quarantined": len(r.quarantine),
                    "blocked": r.blocked,
                }
                for month, r in results.items()
                if partitioned
            },
        )
        yield dg.MaterializeResult(
            metadata={
                "rows_valid": sum(len(r.good) for r in results.values()),
                "rows_quarantined": sum(len(r.quarantine) for r in results.values()),
                "blocked": any(r.blocked for r in results.values()),
                "dagster/row_count": sum(len(r.good) for r in results.values()),
            }
        )
        combined = combine_all(
            declared_checks(table), {m: r.checks for m, r in results.items()}, _blocked_why(table)
        )
        for name, outcome in combined.items():
            yield _check_result(table, outcome, name)

    return _validated


validated_assets = [_validated_asset(t, True) for t in MONTHLY_TABLES] + [
    _validated_asset(t, False) for t in DIMENSION_TABLES
]
