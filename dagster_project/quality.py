"""Quality: declared schemas per table, quarantine of bad rows, blocking checks that gate the batch."""

import dagster as dg
import pandas as pd

from dagster_project.ingest import DIMENSION_TABLES, MONTHLY_TABLES
from dagster_project.months import MONTHLY, months_of, observe_months
from dagster_project.partitions import MONTHS, monthly
from dagster_project.resources import HybridopsResource
from hybridops.errors import HybridopsError
from hybridops.ingest.landing import LandedFile, latest_landing
from hybridops.ingest.parse import (
    ParseResult,
    file_rows,
    file_rows_by_month,
    file_values,
    parse_outside,
    parse_table,
)
from hybridops.ingest.sources import resolve_source_dir, source_file
from hybridops.months import month_keys
from hybridops.quality.combine import combine_all
from hybridops.quality.completeness import completeness_check
from hybridops.quality.quarantine import (
    OUT_OF_RANGE_MONTH_KEY,
    STATIC_MONTH_KEY,
    empty_quarantine,
    write_quarantine,
)
from hybridops.quality.reconcile import published_rows, quarantined_rows, reconcile
from hybridops.quality.validate import (
    FILE_CHECK,
    CheckOutcome,
    References,
    ValidationResult,
    declared_checks,
    validate_table,
)
from hybridops.quality.volume import earlier_month_rows, volume_check
from hybridops.settings import QualitySettings, Settings
from hybridops.warehouse.db import connect, read_frame, replace_rows, table_exists

# Partitioned checks are a preview feature of Dagster 1.13, used knowingly (see the check specs below);
# dagster_project.build silences its warning while the asset modules load (months.PREVIEW_WARNING).
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


def _landed(con, table: str, settings: Settings) -> LandedFile | str:
    """The table's latest landed file, or why there is none (a missing source file is a failed check)."""
    try:
        source_file(resolve_source_dir(settings), table)
    except HybridopsError as exc:
        return str(exc)
    landed = latest_landing(con, table)
    if landed is None:
        return f"no {table} file has been landed yet: materialize raw_{table} first"
    return landed


def _parsed(table: str, landed: LandedFile | str, month_key: str | None) -> ParseResult:
    """The month's rows as the ingest step parsed them, or a file-level problem."""
    if isinstance(landed, str):
        return ParseResult(table, pd.DataFrame(), empty_quarantine(), critical=[landed], month_key=month_key)
    return parse_table(landed, month_key)


def _loaded_months(context: dg.AssetExecutionContext, settings: Settings) -> list[str]:
    """Months some partition takes: the configured window and every registered partition."""
    window = month_keys(settings.first_month, settings.last_month)
    return sorted(set(window) | set(context.instance.get_dynamic_partitions(MONTHS)))


def _reconcile(
    con,
    table: str,
    landed: LandedFile,
    month_key: str | None,
    parsed: ParseResult,
    result: ValidationResult,
    whole_file: tuple[int, int, int] | None,
) -> CheckOutcome:
    """rows read = valid + quarantined for one month (or dimension file), counted back from the warehouse."""
    name = str(landed.source_path)
    period = month_key or "the whole file"
    valid = len(result.good) if result.blocked else published_rows(con, table, month_key, name)
    quarantined = quarantined_rows(con, table, month_key or STATIC_MONTH_KEY, name)
    file_rows, in_loaded, outside = whole_file if whole_file else (None, None, None)
    return reconcile(
        name,
        period,
        parsed.rows_read,
        valid,
        quarantined,
        held=result.blocked,
        file_rows=file_rows,
        in_loaded_months=in_loaded,
        out_of_range=outside,
    )


def _validated_asset(table: str, partitioned: bool, completeness_blocking: bool) -> dg.AssetsDefinition:
    checks = declared_checks(table, completeness_blocking)

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
            for name, blocking in checks
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
        run_id = context.run.run_id
        results: dict[str, ValidationResult] = {}
        with connect(settings) as con:
            references = _references(con, table)
            landed = _landed(con, table, settings)
            # Every origin the weather file has: one missing for a whole month is then noticed.
            origins = (
                file_values(landed, "origin")
                if table == "weather" and isinstance(landed, LandedFile)
                else set()
            )
            parsed_by_month: dict[str | None, ParseResult] = {}
            for month_key in months:
                parsed = parsed_by_month[month_key] = _parsed(table, landed, month_key)
                result = validate_table(table, parsed, references, settings.quality, run_id)
                if month_key and not parsed.critical:
                    complete = completeness_check(
                        table, result.good, month_key, parsed.source_file, settings.quality, origins
                    )
                    result.checks += [complete] if complete else []
                    # Earlier months (written by this loop too, in order) against this month's valid rows.
                    volume = volume_check(
                        table,
                        len(result.good),
                        month_key,
                        parsed.source_file,
                        earlier_month_rows(con, table, month_key, settings.quality.volume_reference_months),
                        settings.quality,
                    )
                    result.checks += [volume] if volume else []
                write_quarantine(con, table, month_key or STATIC_MONTH_KEY, result.quarantine)
                if not result.blocked:
                    good = result.good.assign(_run_id=run_id)
                    replace_rows(con, table, good, {"month_key": month_key} if month_key else None)
                results[month_key or STATIC_MONTH_KEY] = result
            whole_file = None
            by_month = file_rows_by_month(landed) if partitioned and isinstance(landed, LandedFile) else {}
            if isinstance(landed, LandedFile) and by_month:
                # Rows no loaded partition takes are quarantined in the out-of-range bucket, never dropped.
                loaded = set(_loaded_months(context, settings))
                outside = parse_outside(landed, loaded)
                now = pd.Timestamp.now("UTC").tz_localize(None)
                write_quarantine(
                    con,
                    table,
                    OUT_OF_RANGE_MONTH_KEY,
                    outside.rejects.assign(run_id=run_id, quarantined_at=now),
                )
                whole_file = (
                    file_rows(landed),
                    sum(n for m, n in by_month.items() if m in loaded),
                    quarantined_rows(con, table, OUT_OF_RANGE_MONTH_KEY, str(landed.source_path)),
                )
            if isinstance(landed, LandedFile):
                for month_key, parsed in parsed_by_month.items():
                    result = results[month_key or STATIC_MONTH_KEY]
                    if not parsed.critical:
                        result.checks.append(
                            _reconcile(con, table, landed, month_key, parsed, result, whole_file)
                        )
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
                "rows_out_of_range": whole_file[2] if whole_file else 0,
                "dagster/row_count": sum(len(r.good) for r in results.values()),
            }
        )
        combined = combine_all(checks, {m: r.checks for m, r in results.items()}, _blocked_why(table))
        for name, outcome in combined.items():
            yield _check_result(table, outcome, name)

    return _validated


def validated_assets(quality: QualitySettings) -> list[dg.AssetsDefinition]:
    """The validated tables, their check specs declared as ``quality`` says (built when the code location
    loads: whether a completeness failure blocks is a setting, and Dagster's automation reads the spec)."""
    blocking = quality.completeness_severity == "blocking"
    return [_validated_asset(t, True, blocking) for t in MONTHLY_TABLES] + [
        _validated_asset(t, False, blocking) for t in DIMENSION_TABLES
    ]
