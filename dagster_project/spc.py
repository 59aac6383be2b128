"""Statistical process control: daily data metrics on Shewhart and EWMA charts, rules as asset checks."""

import dagster as dg

from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from hybridops.spc.control import control_chart_markdown, evaluate
from hybridops.spc.metrics import daily_metrics
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


@dg.asset(
    group_name="quality",
    owners=["team:data"],
    kinds={"duckdb"},
    partitions_def=monthly,
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
    month_key = context.partition_key
    with connect(settings.warehouse_db) as con:
        flights = read_frame(con, "select * from flights where month_key = ?", [month_key])
        weather = read_frame(con, "select * from weather where month_key = ?", [month_key])
        metrics = daily_metrics(flights, weather, month_key)
        replace_rows(con, "spc_metrics", metrics, {"month_key": month_key})
        history = read_frame(con, "select * from spc_metrics where month_key <= ? order by day", [month_key])
        result = evaluate(history, month_key, settings.spc, context.run.run_id)
        replace_rows(con, "spc_points", result.points, {"month_key": month_key})
        replace_rows(con, "spc_violations", result.violations, {"month_key": month_key})

    metadata: dict[str, object] = {
        "days": int(metrics["day"].nunique()),
        "violations": len(result.violations),
    }
    for metric in CHARTED:
        rows = result.points[result.points["metric"] == metric]
        if rows.empty:
            continue
        # Numeric metadata per partition is what the Dagster UI plots across materializations.
        metadata[f"{metric}_mean"] = float(rows["value"].mean())
        metadata[f"{metric}_center"] = float(rows["center"].iloc[-1])
        metadata[f"{metric}_ucl"] = float(rows["ucl"].iloc[-1])
        metadata[f"{metric}_lcl"] = float(rows["lcl"].iloc[-1])
    metadata["control_chart_dep_delay_mean"] = dg.MetadataValue.md(
        control_chart_markdown(result.points, "dep_delay_mean")
    )
    yield dg.MaterializeResult(metadata=metadata)  # type: ignore[arg-type]

    severities = settings.spc.rule_severity
    for rule in RULES:
        hits = result.violations[result.violations["rule"] == rule]
        yield dg.AssetCheckResult(
            check_name=f"spc_{rule}",
            passed=hits.empty,
            severity=dg.AssetCheckSeverity(severities.get(rule, "WARN")),
            description=(
                "in control"
                if hits.empty
                else f"{len(hits)} violation(s): "
                + "; ".join(f"{r.metric} on {str(r.day)[:10]}" for r in hits.head(5).itertuples())
            ),
            metadata={
                "violations": len(hits),
                "metrics": ", ".join(sorted(set(hits["metric"]))) or "none",
            },
        )
