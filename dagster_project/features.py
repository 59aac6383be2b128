"""Features: the shared contract between the data team and the ML team (Feast offline + online)."""

import dagster as dg

from dagster_project.months import MONTHLY, months_of, observe_months
from dagster_project.resources import HybridopsResource
from dagster_project.retries import transient_retries
from hybridops.features.compute import build_feature_tables_months
from hybridops.features.store import apply_definitions, feature_store, materialize_months
from hybridops.warehouse.db import connect

OWNERS = ["team:data", "team:ml"]
ONLINE_STORE_POOL = "online_store"


@dg.asset(
    group_name="features",
    owners=OWNERS,
    kinds={"parquet", "duckdb"},
    **MONTHLY,
    deps=["fct_flights", "weather", "planes"],
    description=(
        "Feature view sources (Feast offline store): origin weather by hour, carrier and route delay "
        "statistics over trailing windows of delays already known, plane profile."
    ),
)
@transient_retries
def feature_tables(context: dg.AssetExecutionContext, hybridops: HybridopsResource) -> dg.MaterializeResult:
    settings = hybridops.settings()
    with connect(settings) as con:
        # One query per view over the whole range, not one per month: a year takes ~40% less time.
        built = build_feature_tables_months(
            con, settings.parquet_dir, months_of(context), settings.model.horizon_minutes
        )
    per_month = {
        month_key: {f"rows_{view}": count for view, count in rows.items()}
        for month_key, rows in built.items()
    }
    observe_months(context, per_month)
    totals: dict[str, int] = {}
    for counts in per_month.values():
        for key, count in counts.items():
            totals[key] = totals.get(key, 0) + count
    return dg.MaterializeResult(metadata={**totals, "dagster/row_count": sum(totals.values())})


@dg.asset(
    group_name="features",
    owners=OWNERS,
    kinds={"feast"},
    description="`feast apply`: entities, feature views and the flight_delay feature service in the registry.",
)
@transient_retries
def feast_registry(hybridops: HybridopsResource) -> dg.MaterializeResult:
    settings = hybridops.settings()
    applied = apply_definitions(feature_store(settings), settings)
    return dg.MaterializeResult(metadata={"applied": ", ".join(sorted(applied)), "objects": len(applied)})


@dg.asset(
    group_name="features",
    owners=OWNERS,
    kinds={"feast", "sqlite"},
    **MONTHLY,
    # One writer of the online store at a time (months fanned out to parallel runs would otherwise write
    # the same entities' rows at once).
    pool=ONLINE_STORE_POOL,
    deps=[feature_tables, feast_registry],
    description="The latest feature values of the run's months materialized into the Feast online store.",
)
@transient_retries
def online_features(context: dg.AssetExecutionContext, hybridops: HybridopsResource) -> dg.MaterializeResult:
    settings = hybridops.settings()
    months = months_of(context)
    # One materialization over the whole range: the online store keeps the latest value per entity, so
    # month by month would write every month's rows only for the next month to overwrite them.
    written = materialize_months(feature_store(settings), months[0], months[-1])
    return dg.MaterializeResult(
        metadata={
            **{f"online_rows_{view}": count for view, count in written.items()},
            "features_materialized": sum(written.values()),
        }
    )
