"""Warehouse: conformed flights in DuckDB/Parquet and the BI-style on-time report."""

import dagster as dg

from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from hybridops.warehouse.conform import build_fct_flights
from hybridops.warehouse.db import connect
from hybridops.warehouse.report import build_report


@dg.asset(
    group_name="warehouse",
    owners=["team:data"],
    kinds={"duckdb", "parquet"},
    partitions_def=monthly,
    deps=["flights", "weather", "planes", "airlines"],
    description="Flights joined with the weather at their origin and scheduled hour, planes and airlines.",
)
def fct_flights(context: dg.AssetExecutionContext, hybridops: HybridopsResource) -> dg.MaterializeResult:
    settings = hybridops.settings()
    with connect(settings.warehouse_db) as con:
        rows = build_fct_flights(con, settings.parquet_dir, context.partition_key)
        with_weather = con.execute(
            "select avg(case when temp is not null then 1.0 else 0.0 end) from fct_flights where month_key = ?",
            [context.partition_key],
        ).fetchone()
    return dg.MaterializeResult(
        metadata={
            "warehouse_rows": rows,
            "dagster/row_count": rows,
            "weather_match_rate": float(with_weather[0] or 0.0) if with_weather else 0.0,
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
    with connect(settings.warehouse_db) as con:
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
