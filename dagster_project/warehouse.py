"""Warehouse: conformed flights in DuckDB/Parquet and the BI-style on-time report."""

import dagster as dg

from dagster_project.months import MONTHLY, months_of, observe_months
from dagster_project.resources import HybridopsResource
from hybridops.warehouse.conform import build_fct_flights_months
from hybridops.warehouse.db import connect
from hybridops.warehouse.report import build_report


@dg.asset(
    group_name="warehouse",
    owners=["team:data"],
    kinds={"duckdb", "parquet"},
    **MONTHLY,
    deps=["flights", "weather", "planes", "airlines"],
    description="Flights joined with the weather at their origin and scheduled hour, planes and airlines.",
)
def fct_flights(context: dg.AssetExecutionContext, hybridops: HybridopsResource) -> dg.MaterializeResult:
    settings = hybridops.settings()
    months = months_of(context)
    with connect(settings) as con:
        counts = build_fct_flights_months(con, settings.parquet_dir, months)
        rates = dict(
            con.execute(
                "select month_key, avg(case when temp is not null then 1.0 else 0.0 end) from fct_flights "
                "where list_contains(?, month_key) group by 1",
                [months],
            ).fetchall()
        )
    per_month: dict[str, dict[str, float | int]] = {
        month: {"warehouse_rows": counts[month], "weather_match_rate": float(rates.get(month) or 0.0)}
        for month in months
    }
    observe_months(context, per_month)
    rows = sum(int(m["warehouse_rows"]) for m in per_month.values())
    matched = sum(m["warehouse_rows"] * m["weather_match_rate"] for m in per_month.values())
    return dg.MaterializeResult(
        metadata={
            "warehouse_rows": rows,
            "dagster/row_count": rows,
            "weather_match_rate": matched / rows if rows else 0.0,
        }
    )


@dg.asset(
    group_name="warehouse",
    owners=["team:data"],
    kinds={"duckdb", "html"},
    deps=[fct_flights],
    description="On-time performance by carrier, origin and month: table rpt_on_time and an HTML report.",
)
def on_time_report(hybridops: HybridopsResource) -> dg.MaterializeResult:
    settings = hybridops.settings()
    with connect(settings) as con:
        report = build_report(con, settings.reports_dir)
    headline = {key: value for key, value in report.headline.items() if isinstance(value, int | float | str)}
    return dg.MaterializeResult(
        metadata={
            "report_html": dg.MetadataValue.path(str(report.html_path)),
            "report_csv": dg.MetadataValue.path(str(report.csv_path)),
            "dagster/row_count": report.rows,
            **headline,
        }
    )
