"""The data-quality gate of one table (and month): split parsed rows into good rows and quarantine.

Row-level problems never block on their own: the row goes to quarantine with its file, line and reason,
and the rest of the batch continues. Only a file-level problem (``file_readable_and_schema_valid``) or too
many bad rows (``bad_row_ratio``) block the batch. Referential gaps that are normal in the source
(flights whose plane or destination is not in the dimension files) are reported as warnings, not rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import pandas as pd
import pandera.errors as pa_errors

from hybridops.ingest.parse import ParseResult
from hybridops.ingest.records import CONTROL, TRUNCATED
from hybridops.quality import schemas
from hybridops.quality.quarantine import QUARANTINE_COLUMNS, STATIC_MONTH_KEY, empty_quarantine
from hybridops.settings import QualitySettings

Severity = Literal["ERROR", "WARN"]
FILE_CHECK = "file_readable_and_schema_valid"
RATIO_CHECK = "bad_row_ratio"
RECONCILE_CHECK = "rows_reconciled"  # evaluated after the load (hybridops.quality.reconcile)
# Completeness per key and period (hybridops.quality.completeness); blocking or warn by settings, so the
# spec is declared blocking and a "warn" setting reports WARN severity (Dagster blocks on ERROR only).
COMPLETENESS_CHECKS = {"weather": "weather_hours_complete", "flights": "daily_flights_complete"}
VOLUME_CHECKS = {"flights": "monthly_volume"}


@dataclass
class References:
    """Keys of the dimension tables; an empty set means "not loaded": its reference check is skipped."""

    carriers: set[str] = field(default_factory=set)
    airports: set[str] = field(default_factory=set)
    tailnums: set[str] = field(default_factory=set)

    @classmethod
    def from_frames(
        cls,
        airlines: pd.DataFrame | None = None,
        airports: pd.DataFrame | None = None,
        planes: pd.DataFrame | None = None,
    ) -> References:
        """References from (good) dimension frames; ``None`` leaves a set empty."""

        def keys(frame: pd.DataFrame | None, column: str) -> set[str]:
            return set() if frame is None else set(frame[column].dropna().astype(str))

        return cls(keys(airlines, "carrier"), keys(airports, "faa"), keys(planes, "tailnum"))


@dataclass
class CheckOutcome:
    """One check of the gate, as shown in Dagster asset checks and the CLI."""

    name: str
    passed: bool
    severity: Severity
    blocking: bool
    message: str
    metadata: dict[str, float | int | str] = field(default_factory=dict)


@dataclass
class ValidationResult:
    """Good rows (same columns as the parsed frame), quarantine rows and every check's outcome."""

    table: str
    good: pd.DataFrame
    quarantine: pd.DataFrame
    checks: list[CheckOutcome]

    @property
    def blocked(self) -> bool:
        """True when a blocking check failed: nothing of this batch may be published."""
        return any(c.blocking and not c.passed for c in self.checks)


def row_rules(table: str) -> list[str]:
    """The row-level rules reported for ``table`` (one ``CheckOutcome`` each)."""
    rules = [schemas.TYPE, schemas.FIELD_COUNT, TRUNCATED, CONTROL, schemas.REQUIRED, schemas.RANGE]
    rules.append(schemas.DUPLICATE_KEY)
    if table in ("flights", "weather"):
        rules.append(schemas.TIMESTAMP)
    if table == "flights":
        rules += [schemas.CARRIER_IN_AIRLINES, schemas.ORIGIN_IN_AIRPORTS]
    return rules


def declared_checks(table: str, completeness_blocking: bool = True) -> list[tuple[str, bool]]:
    """Every check ``validate_table`` reports for ``table``, as ``(name, blocking)``, in report order.

    ``completeness_blocking`` is ``quality.completeness_severity == "blocking"``: under ``warn`` the
    completeness checks (and ``monthly_volume``, which shares their severity) are declared non-blocking,
    so that their failure holds neither a run nor automation.
    """
    extra = ["tailnum_in_planes", "dest_in_airports"] if table == "flights" else []
    blocking = [(FILE_CHECK, True), (RATIO_CHECK, True), (RECONCILE_CHECK, True)]
    if table in COMPLETENESS_CHECKS:
        blocking.append((COMPLETENESS_CHECKS[table], completeness_blocking))
    if table in VOLUME_CHECKS:
        blocking.append((VOLUME_CHECKS[table], completeness_blocking))
    return blocking + [(name, False) for name in row_rules(table) + extra]


def validate_table(
    table: str,
    parsed: ParseResult,
    refs: References,
    settings: QualitySettings,
    run_id: str,
) -> ValidationResult:
    """Validate one parsed table (or month of it).

    Args:
        table: source table name.
        parsed: output of :func:`hybridops.ingest.parse.parse_table`.
        refs: dimension keys for the referential rules (empty sets skip them).
        settings: the gate's thresholds.
        run_id: stamped on every quarantine row.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    frame = parsed.frame
    critical = list(parsed.critical)
    issues: dict[int, list[tuple[str, str]]] = {}
    if not critical:
        critical += _schema_issues(table, frame, settings, issues)
    if critical:
        return ValidationResult(
            table=table,
            good=frame.iloc[0:0].copy(),
            quarantine=_finish(empty_quarantine(), run_id, now),
            checks=[
                CheckOutcome(
                    FILE_CHECK, False, "ERROR", True, " | ".join(critical), {"problems": len(critical)}
                )
            ],
        )
    skipped = _reference_issues(table, frame, refs, issues)

    bad_index = sorted(issues)
    quarantine = pd.concat(
        [parsed.rejects, _quarantine_rows(table, parsed, bad_index, issues)], ignore_index=True
    )
    quarantine = _finish(quarantine, run_id, now)
    good = frame.drop(index=bad_index)

    counts = {rule: 0 for rule in row_rules(table)}
    for names in quarantine["check_name"]:
        for rule in str(names).split(","):
            counts[rule] = counts.get(rule, 0) + 1
    checks = [CheckOutcome(FILE_CHECK, True, "ERROR", True, f"{parsed.source_file} is readable", {})]
    checks.append(_ratio_check(len(quarantine), parsed.rows_read, settings, parsed.source_file))
    for rule, count in counts.items():
        message = (
            f"skipped: {skipped[rule]} not loaded"
            if rule in skipped
            else f"{count} row(s) quarantined by rule {rule}"
        )
        checks.append(CheckOutcome(rule, count == 0, "WARN", False, message, {"rows": count}))
    if table == "flights":
        checks += [_tailnum_check(good, refs, settings), _dest_check(good, refs)]
    return ValidationResult(
        table=table, good=good.reset_index(drop=True), quarantine=quarantine, checks=checks
    )


def _schema_issues(
    table: str, frame: pd.DataFrame, settings: QualitySettings, issues: dict[int, list[tuple[str, str]]]
) -> list[str]:
    """Run the pandera schema; add per-row issues, return schema-level problems (wrong dtypes...)."""
    try:
        schemas.schema_for(table, settings).validate(frame, lazy=True)
        return []
    except pa_errors.SchemaErrors as exc:
        cases = exc.failure_cases
    except pa_errors.SchemaError as exc:  # pragma: no cover - lazy mode reports through SchemaErrors
        return [f"{table}: {exc}"]
    problems: list[str] = []
    duplicate_of = _first_lines(table, frame)
    seen: set[tuple[int, str, str]] = set()
    for case in cases.itertuples(index=False):
        check, column, value, index = str(case.check), case.column, case.failure_case, case.index
        if index is None or pd.isna(index):
            problems.append(
                f"{table}: column {column} fails {check} ({value}); the parser and schema disagree"
            )
            continue
        row = int(index)
        # Dataframe-wide checks report the failing row once per column: keep one entry per check.
        wide = case.schema_context == "DataFrameSchema"
        key = (row, check, "" if wide else str(column))
        if key in seen:
            continue
        seen.add(key)
        if check == "not_nullable":
            rule, reason = schemas.REQUIRED, f"{schemas.REQUIRED}: {column} is missing"
        elif check == "multiple_fields_uniqueness":
            keys = ", ".join(schemas.KEYS[table])
            rule = schemas.DUPLICATE_KEY
            reason = f"{rule}: key ({keys}) already seen on line {duplicate_of.get(row, '?')}"
        else:
            rule = check.split(":", 1)[0]
            detail = _timestamp_detail(frame, row) if wide else f"got {column}={_show(value)}"
            reason = f"{check} ({detail})"
        issues.setdefault(row, []).append((rule, reason))
    return problems


def _first_lines(table: str, frame: pd.DataFrame) -> dict[int, int]:
    """For each duplicate-key row, the source line of the key's first occurrence."""
    key = schemas.KEYS[table]
    dup = frame.duplicated(subset=key, keep="first")
    if not dup.any():
        return {}
    first = frame.groupby(key, dropna=False, sort=False)["_source_line"].transform("first")
    return {int(i): int(first[i]) for i in frame.index[dup]}


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    item = getattr(value, "item", None)  # numpy scalars print as np.int64(...) otherwise
    return str(item() if callable(item) else value)


def _timestamp_detail(frame: pd.DataFrame, row: int) -> str:
    cols = [
        c for c in ("year", "month", "day", "hour", "minute", "sched_dep_time", "time_hour") if c in frame
    ]
    return "got " + ", ".join(f"{c}={_show(frame.at[row, c])}" for c in cols)


def _reference_issues(
    table: str, frame: pd.DataFrame, refs: References, issues: dict[int, list[tuple[str, str]]]
) -> dict[str, str]:
    """Quarantine flights whose carrier or origin is unknown; returns rules skipped for lack of refs."""
    skipped: dict[str, str] = {}
    if table != "flights":
        return skipped
    for rule, column, known, source in (
        (schemas.CARRIER_IN_AIRLINES, "carrier", refs.carriers, "airlines"),
        (schemas.ORIGIN_IN_AIRPORTS, "origin", refs.airports, "airports"),
    ):
        if not known:
            skipped[rule] = source
            continue
        values = frame[column]
        unknown = values.notna() & ~values.isin(known)
        for row in frame.index[unknown.to_numpy(dtype=bool)]:
            issues.setdefault(int(row), []).append(
                (rule, f"{rule}: {column}={values[row]!r} is not in {source}")
            )
    return skipped


def _quarantine_rows(
    table: str, parsed: ParseResult, rows: list[int], issues: dict[int, list[tuple[str, str]]]
) -> pd.DataFrame:
    if not rows:
        return empty_quarantine()
    rank = {rule: i for i, rule in enumerate(row_rules(table))}
    ordered = {r: sorted(issues[r], key=lambda issue: rank.get(issue[0], len(rank))) for r in rows}
    frame = parsed.frame.loc[rows]
    data_cols = [c for c in frame.columns if c not in ("_source_file", "_source_line", "month_key")]
    records = frame[data_cols].to_json(orient="records", date_format="iso", lines=True).splitlines()
    if parsed.month_key is not None:
        month_keys: list[str] = [parsed.month_key] * len(rows)
    elif "month_key" in frame:
        month_keys = frame["month_key"].astype(str).tolist()
    else:
        month_keys = [STATIC_MONTH_KEY] * len(rows)
    return pd.DataFrame(
        {
            "table_name": table,
            "month_key": month_keys,
            "source_file": frame["_source_file"].to_numpy(),
            "source_line": frame["_source_line"].to_numpy(),
            "check_name": [",".join(dict.fromkeys(rule for rule, _ in ordered[r])) for r in rows],
            "reason": ["; ".join(reason for _, reason in ordered[r]) for r in rows],
            "record_json": records,
        }
    )


def _finish(quarantine: pd.DataFrame, run_id: str, now: datetime) -> pd.DataFrame:
    out = quarantine.copy()
    out["run_id"] = run_id
    out["quarantined_at"] = now
    out = out.loc[:, list(QUARANTINE_COLUMNS)].sort_values("source_line", kind="stable")
    return out.astype(empty_quarantine().dtypes.to_dict()).reset_index(drop=True)


def _ratio_check(bad: int, rows_read: int, settings: QualitySettings, source_file: str) -> CheckOutcome:
    ratio = bad / rows_read if rows_read else 0.0
    passed = ratio <= settings.max_bad_row_ratio
    return CheckOutcome(
        RATIO_CHECK,
        passed,
        "ERROR",
        True,
        f"{source_file}: {bad} of {rows_read} rows quarantined ({ratio:.2%}; limit {settings.max_bad_row_ratio:.2%})"
        + ("" if passed else "; the batch is blocked: inspect the quarantine table and fix the source"),
        {"quarantined": bad, "rows_read": rows_read, "ratio": ratio, "limit": settings.max_bad_row_ratio},
    )


def _tailnum_check(good: pd.DataFrame, refs: References, settings: QualitySettings) -> CheckOutcome:
    name = "tailnum_in_planes"
    if not refs.tailnums:
        return CheckOutcome(name, True, "WARN", False, "skipped: planes not loaded", {})
    tails = good["tailnum"].dropna()
    unknown = int((~tails.isin(refs.tailnums)).sum())
    ratio = unknown / len(tails) if len(tails) else 0.0
    limit = settings.max_unknown_tailnum_ratio
    return CheckOutcome(
        name,
        ratio <= limit,
        "WARN",
        False,
        f"{unknown} of {len(tails)} flights with a tailnum reference a plane not in planes "
        f"({ratio:.1%}; warn above {limit:.0%})",
        {"unknown": unknown, "with_tailnum": len(tails), "ratio": ratio, "limit": limit},
    )


def _dest_check(good: pd.DataFrame, refs: References) -> CheckOutcome:
    name = "dest_in_airports"
    if not refs.airports:
        return CheckOutcome(name, True, "WARN", False, "skipped: airports not loaded", {})
    dest = good["dest"].dropna()
    missing = dest[~dest.isin(refs.airports)]
    codes = sorted(set(missing.astype(str)))
    return CheckOutcome(
        name,
        not codes,
        "WARN",
        False,
        f"{len(missing)} flights go to {len(codes)} destination(s) missing from airports"
        + (f": {', '.join(codes)}" if codes else ""),
        {"unknown_flights": len(missing), "unknown_dests": ",".join(codes), "unknown_dest_count": len(codes)},
    )
