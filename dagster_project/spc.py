"""Statistical process control: daily data metrics on Shewhart and EWMA charts, rules as asset checks."""

import dagster as dg
import pandas as pd

from dagster_project.months import MONTHLY, months_of, observe_months
from dagster_project.resources import HybridopsResource
from hybridops.quality.combine import combine_all
from hybridops.quality.validate import CheckOutcome
from hybridops.spc.control import control_chart_markdown, evaluate
from hybridops.spc.metrics import FLIGHT_COLUMNS, WEATHER_COLUMNS, daily_metrics
from hybridops.warehouse.db import connect, read_frame, replace_rows

RULES = ("rule1", "rule2", "rule3", "rule4", "ewma")
RULE_TEXT = {
    "rule1": "one point beyond the 3-sigma limits",
    "rule2": "2 of 3 consecutive points beyond 2-sigma on one side",
    "rule3": "4 of 5 consecutive points beyond 1-sigma on one side",
    "rule4": "8 consecutive points on one side of the centre line",
    "ewma": "the EWMA beyond its limits (a small sustained shift)",
}
CHARTED = ("flight_count", "cancellation_rate", "dep_delay_mean", "weather_wind_speed_mean")


def _month_outcomes(violations: pd.DataFrame, severities: dict[str, str]) -> list[CheckOutcome]:
    outcomes = []
    for rule in RULES:
        hits = violations[violations["rule"] == rule]
        message = (
            "in control"
            if hits.empty
            else f"{len(hits)} violation(s): "
            + "; ".join(f"{r.metric} on {str(r.day)[:10]}" for r in hits.head(5).itertuples())
        )
        severity = "ERROR" if severities.get(rule, "WARN") == "ERROR" else "WARN"
        outcome = CheckOutcome(f"spc_{rule}", hits.empty, severity, False, message, {"violations": len(hits)})
        outcomes.append(outcome)
    return outcomes


def _chart_metadata(points: pd.DataFrame) -> dict[str, object]:
    metadata: dict[str, object] = {}
    for metric in CHARTED:
        rows = points[points["metric"] == metric]
        if rows.empty:
            continue
        # Numeric metadata per partition is what the Dagster UI plots across materializations.
        metadata[f"{metric}_mean"] = float(rows["value"].mean())
        metadata[f"{metric}_center"] = float(rows["center"].iloc[-1])
        metadata[f"{metric}_ucl"] = float(rows["ucl"].iloc[-1])
        metadata[f"{metric}_lcl"] = float(rows["lcl"].iloc[-1])
    return metadata


@dg.asset(
    group_name="quality",
    owners=["team:data"],
    kinds={"duckdb"},
    **MONTHLY,
    deps=["flights", "weather"],
    check_specs=[
        dg.AssetCheckSpec(f"spc_{rule}", asset="spc_daily_metrics", description=RULE_TEXT[rule])
        for rule in RULES
    ],
    description=(
        "Daily data metrics (volume, cancellation rate, null rates, mean delay, weather) on individuals and "
        "EWMA control charts with limits from the baseline window; Western Electric rules 1-4 as checks."
    ),
)
def spc_daily_metrics(context: dg.AssetExecutionContext, hybridops: HybridopsResource):
    settings = hybridops.settings()
    months = months_of(context)
    violations: dict[str, pd.DataFrame] = {}
    per_month: dict[str, dict[str, object]] = {}
    points = []
    days = 0
    with connect(settings) as con:
        # Oldest first: each month's limits and runs see the months before it.
        for month_key in months:
            # Only the columns the metrics read: the tables' text columns cost most to convert.
            flights = read_frame(
                con, f"select {', '.join(FLIGHT_COLUMNS)} from flights where month_key = ?", [month_key]
            )
            weather = read_frame(
                con, f"select {', '.join(WEATHER_COLUMNS)} from weather where month_key = ?", [month_key]
            )
            metrics = daily_metrics(flights, weather, month_key)
            replace_rows(con, "spc_metrics", metrics, {"month_key": month_key})
            history = read_frame(
                con, "select * from spc_metrics where month_key <= ? order by day", [month_key]
            )
            result = evaluate(history, month_key, settings.spc, context.run.run_id)
            replace_rows(con, "spc_points", result.points, {"month_key": month_key})
            replace_rows(con, "spc_violations", result.violations, {"month_key": month_key})
            violations[month_key] = result.violations
            points.append(result.points)
            days += int(metrics["day"].nunique())
            per_month[month_key] = {
                "days": int(metrics["day"].nunique()),
                "violations": len(result.violations),
                **_chart_metadata(result.points),
            }
    observe_months(context, per_month)
    charted = pd.concat(points, ignore_index=True)
    metadata: dict[str, object] = {
        "days": days,
        "violations": sum(len(v) for v in violations.values()),
        **_chart_metadata(charted),
        "control_chart_dep_delay_mean": dg.MetadataValue.md(
            control_chart_markdown(charted, "dep_delay_mean")
        ),
    }
    yield dg.MaterializeResult(metadata=metadata)  # type: ignore[arg-type]

    severities = settings.spc.rule_severity
    by_month = {month: _month_outcomes(found, severities) for month, found in violations.items()}
    every = pd.concat(violations.values(), ignore_index=True)
    for name, outcome in combine_all([(f"spc_{rule}", False) for rule in RULES], by_month, "no data").items():
        assert outcome is not None  # every month evaluates every rule
        metrics = sorted(set(every.loc[every["rule"] == name.removeprefix("spc_"), "metric"]))
        yield dg.AssetCheckResult(
            check_name=name,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity(outcome.severity),
            description=outcome.message,
            metadata={**outcome.metadata, "metrics": ", ".join(metrics) or "none"},
        )
