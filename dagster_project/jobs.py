"""Jobs: reference data, one month of data, the report, training, and one month of scoring/monitoring."""

import dagster as dg

DATA_GROUPS = ("ingest", "quality", "warehouse", "features")

dimensions_job = dg.define_asset_job(
    "dimensions",
    selection=dg.AssetSelection.assets(
        "raw_planes", "raw_airlines", "raw_airports", "planes", "airlines", "airports", "feast_registry"
    ),
    description="Reference tables (planes, airlines, airports) and the Feast registry.",
)

monthly_job = dg.define_asset_job(
    "monthly_partition",
    selection=dg.AssetSelection.groups(*DATA_GROUPS)
    - dg.AssetSelection.assets("on_time_report")
    - dimensions_job.selection,
    description="One month of data through the graph: ingest, validation, SPC, warehouse, features.",
)

report_job = dg.define_asset_job(
    "report",
    selection=dg.AssetSelection.assets("on_time_report"),
    description="The on-time performance report over every loaded month.",
)

training_job = dg.define_asset_job(
    "training",
    selection=dg.AssetSelection.groups("training"),
    description="Training set, tracked candidate, promotion gate. Also what the retraining loop launches.",
)

scoring_job = dg.define_asset_job(
    "scoring",
    selection=dg.AssetSelection.groups("inference", "monitoring")
    - dg.AssetSelection.assets("feature_skew_audit"),
    description="The months scored by the champion (one run for consecutive months), then drift and live performance.",
)

skew_audit_job = dg.define_asset_job(
    "skew_audit",
    selection=dg.AssetSelection.assets("feature_skew_audit"),
    description="Served feature vectors against Feast's point-in-time recomputation.",
)

skew_audit_schedule = dg.ScheduleDefinition(
    job=skew_audit_job,
    cron_schedule="0 6 * * *",
    description="Daily audit of what the inference service served (turn on where the service runs).",
)
