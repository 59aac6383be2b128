"""Features: the shared contract between the data team and the ML team (Feast offline + online)."""

import dagster as dg

from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from hybridops.features.compute import build_feature_tables
from hybridops.features.store import apply_definitions, feature_store, materialize_month
from hybridops.warehouse.db import connect

OWNERS = ["team:data", "team:ml"]


@dg.asset(
    group_name="features",
    owners=OWNERS,
    kinds={"parquet", "duckdb"},
    partitions_def=monthly,
    deps=["fct_flights", "weather", "planes"],
    description=(
        "Feature view sources (Feast offline store): origin weather by hour, carrier and route delay "
        "statistics over trailing windows of delays already known, plane profile."
    ),
)
def feature_tables(context: dg.AssetExecutionContext, hybridops: HybridopsResource) -> dg.MaterializeResult:
    settings = hybridops.settings()
    with connect(settings.warehouse_db) as con:
        rows = build_feature_tables(con, settings.parquet_dir, context.partition_key)
    return dg.MaterializeResult(
        metadata={
            **{f"rows_{view}": count for view, count in rows.items()},
            "dagster/row_count": sum(rows.values()),
        }
    )


@dg.asset(
    group_name="features",
    owners=OWNERS,
    kinds={"feast"},
    description="`feast apply`: entities, feature views and the flight_delay feature service in the registry.",
)
def feast_registry(hybridops: HybridopsResource) -> dg.MaterializeResult:
    settings = hybridops.settings()
    applied = apply_definitions(feature_store(settings), settings)
    return dg.MaterializeResult(metadata={"applied": ", ".join(sorted(applied)), "objects": len(applied)})


@dg.asset(
    group_name="features",
    owners=OWNERS,
    kinds={"feast", "sqlite"},
    partitions_def=monthly,
    deps=[feature_tables, feast_registry],
    description="The month's latest feature values materialized into the Feast online store (serving).",
)
def online_features(context: dg.AssetExecutionContext, hybridops: HybridopsResource) -> dg.MaterializeResult:
    settings = hybridops.settings()
    written = materialize_month(feature_store(settings), context.partition_key)
    return dg.MaterializeResult(
        metadata={
            **{f"online_rows_{view}": count for view, count in written.items()},
            "features_materialized": sum(written.values()),
        }
    )
