"""Jobs: dimensions (unpartitioned references), one month of the graph, and the report."""

import dagster as dg

dimensions_job = dg.define_asset_job(
    "dimensions",
    selection=dg.AssetSelection.assets(
        "raw_planes", "raw_airlines", "raw_airports", "planes", "airlines", "airports", "feast_registry"
    ),
    description="Reference tables (planes, airlines, airports) and the Feast registry.",
)

monthly_job = dg.define_asset_job(
    "monthly_partition",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("on_time_report") - dimensions_job.selection,
    description="One month through the graph: ingest, validation, SPC, warehouse, features.",
)

report_job = dg.define_asset_job(
    "report",
    selection=dg.AssetSelection.assets("on_time_report"),
    description="The on-time performance report over every loaded month.",
)
