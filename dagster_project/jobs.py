"""Jobs: reference data, one month of data, the report, training, and one month of scoring/monitoring.

Each profile's code location has the jobs whose assets it holds (``jobs_for``).
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

DATA_GROUPS = ("ingest", "quality", "warehouse")
ML_DATA_GROUPS = ("features",)
DIMENSION_ASSETS = ("raw_planes", "raw_airlines", "raw_airports", "planes", "airlines", "airports")


def _dimensions_job(ml: bool) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "dimensions",
        selection=dg.AssetSelection.assets(*DIMENSION_ASSETS, *(("feast_registry",) if ml else ())),
        description="Reference tables (planes, airlines, airports)"
        + (" and the Feast registry." if ml else "."),
    )


def _monthly_job(data: bool, ml: bool) -> UnresolvedAssetJobDefinition:
    groups = (DATA_GROUPS if data else ()) + (ML_DATA_GROUPS if ml else ())
    excluded = ("on_time_report", *DIMENSION_ASSETS) if data else ()
    return dg.define_asset_job(
        "monthly_partition",
        selection=dg.AssetSelection.groups(*groups)
        - dg.AssetSelection.assets(*excluded, *(("feast_registry",) if ml else ())),
        description=(
            "One month of data through the graph: "
            + ", ".join(
                (["ingest, validation, SPC, warehouse"] if data else []) + (["features"] if ml else [])
            )
            + "."
        ),
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


def jobs_for(data: bool, ml: bool) -> list[UnresolvedAssetJobDefinition]:
    """The jobs of a code location holding the DataOps half (``data``), the ML half (``ml``) or both."""
    jobs = []
    if data:
        jobs.append(_dimensions_job(ml))
    if data or ml:
        jobs.append(_monthly_job(data, ml))
    if data:
        jobs.append(report_job)
    if ml:
        jobs += [training_job, scoring_job, skew_audit_job]
    return jobs
