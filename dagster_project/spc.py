"""Statistical process control: daily data metrics on Shewhart and EWMA charts, rules as asset checks."""

from pathlib import Path

import dagster as dg
import pandas as pd

from dagster_project.months import MONTHLY, months_of, observe_months
from dagster_project.resources import HybridopsResource
from hybridops.quality.combine import combine_all
from hybridops.quality.validate import CheckOutcome
from hybridops.spc.control import evaluate
from hybridops.spc.metrics import FLIGHT_COLUMNS, WEATHER_COLUMNS, daily_metrics
from hybridops.spc.plot import control_chart_png, markdown_image, write_png
from hybridops.spc.tables import alarms_markdown, control_chart_markdown
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


# Unit of each charted metric, and the factor from the stored value to the shown one.
UNITS = {
    "flight_count": ("flights/day", 1.0),
    "cancellation_rate": ("%", 100.0),
    "dep_delay_mean": ("min", 1.0),
    "weather_wind_speed_mean": ("mph", 1.0),
}


def _chart_metadata(points: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    """Mean, centre and limits per charted metric: floats rounded to 2 decimals, the unit in the key."""
    metadata: dict[str, dg.MetadataValue] = {}
    for metric in CHARTED:
        rows = points[points["metric"] == metric]
        if rows.empty:
            continue
        unit, factor = UNITS[metric]
        # Numeric metadata per partition is what the Dagster UI plots across materializations.
        for stat, value in (
            ("mean", rows["value"].mean()),
            ("center", rows["center"].iloc[-1]),
            ("ucl", rows["ucl"].iloc[-1]),
            ("lcl", rows["lcl"].iloc[-1]),
        ):
            metadata[f"{metric}_{stat} [{unit}]"] = dg.MetadataValue.float(round(float(value) * factor, 2))
    return metadata


def _control_chart(
    points: pd.DataFrame, violations: pd.DataFrame, reports_dir: Path, months: list[str]
) -> dict[str, dg.MetadataValue]:
    """The dep_delay_mean control chart as a PNG in the reports folder, shown inline on the asset."""
    metric = "dep_delay_mean"
    span = months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"
    png = control_chart_png(points, metric, violations, UNITS[metric][0], f"{metric}, {span}")
    path = write_png(png, reports_dir / "spc" / f"control_chart_{metric}_{span.replace('..', '_')}.png")
    return {
        f"control_chart_{metric}": dg.MetadataValue.md(
            markdown_image(png, f"{metric} control chart, {span}")
        ),
        f"control_chart_{metric}_png": dg.MetadataValue.path(str(path)),
        f"control_chart_{metric}_table": dg.MetadataValue.md(
            control_chart_markdown(points, metric, violations)
        ),
    }


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
        "Daily data metrics on control charts matched to each metric (rates on p-charts, the flight count "
        "per day of the week, the rest on individuals charts) with EWMA; Western Electric rules 1-4 as "
        "checks, one row per run in spc_violations and one alarm per cause in spc_alarms."
    ),
)
def spc_daily_metrics(context: dg.AssetExecutionContext, hybridops: HybridopsResource):
    settings = hybridops.settings()
    months = months_of(context)
    violations: dict[str, pd.DataFrame] = {}
    per_month: dict[str, dict[str, object]] = {}
    points = []
    alarms: list[pd.DataFrame] = []
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
            alarms.append(result.alarms)
            points.append(result.points)
            days += int(metrics["day"].nunique())
            per_month[month_key] = {
                "days": dg.MetadataValue.int(int(metrics["day"].nunique())),
                "violations": dg.MetadataValue.int(len(result.violations)),
                "alarms": dg.MetadataValue.int(len(result.alarms)),
                "error_alarms": dg.MetadataValue.int(result.error_count),
                **_chart_metadata(result.points),
            }
        # One write for every month's alarms (a lakehouse commit per table write costs more than the rows).
        every_alarm = pd.concat([a for a in alarms if not a.empty] or alarms[:1], ignore_index=True)
        replace_rows(con, "spc_alarms", every_alarm, {"month_key": months})
    observe_months(context, per_month)
    charted = pd.concat(points, ignore_index=True)
    fired = pd.concat(violations.values(), ignore_index=True)
    metadata: dict[str, dg.MetadataValue] = {
        "days": dg.MetadataValue.int(days),
        "violations": dg.MetadataValue.int(sum(len(v) for v in violations.values())),
        "alarms": dg.MetadataValue.int(sum(len(a) for a in alarms)),
        "error_alarms": dg.MetadataValue.int(sum(int((a["severity"] == "ERROR").sum()) for a in alarms)),
        "alarm_table": dg.MetadataValue.md(alarms_markdown(every_alarm)),
        **_chart_metadata(charted),
        **_control_chart(charted, fired, settings.reports_dir, months),
    }
    yield dg.MaterializeResult(metadata=metadata)

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
