"""The hybridops code location: one graph for the data team's and the ML team's assets."""

import warnings

import dagster as dg

from dagster_project.months import BETA_WARNING

# The monthly assets pass @dg.asset its beta `backfill_policy` parameter on purpose; its warning would greet
# every user of the code location once per asset. Silenced only while they are defined.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=BETA_WARNING, category=dg.BetaWarning)
    from dagster_project import features, ingest, monitoring, quality, spc, training, warehouse
    from dagster_project.io_manager import WarehouseIOManager
    from dagster_project.jobs import (
        dimensions_job,
        monthly_job,
        report_job,
        scoring_job,
        skew_audit_job,
        skew_audit_schedule,
        training_job,
    )
    from dagster_project.resources import HybridopsResource

defs = dg.Definitions(
    assets=[
        *ingest.raw_assets,
        *quality.validated_assets,
        spc.spc_daily_metrics,
        warehouse.fct_flights,
        warehouse.on_time_report,
        features.feature_tables,
        features.feast_registry,
        features.online_features,
        training.training_set,
        training.candidate_model,
        training.champion_model,
        monitoring.batch_predictions,
        monitoring.model_monitoring,
        monitoring.feature_skew_audit,
    ],
    jobs=[dimensions_job, monthly_job, report_job, training_job, scoring_job, skew_audit_job],
    schedules=[skew_audit_schedule],
    sensors=[monitoring.retrain_on_drift_or_spc],
    # Step outputs as JSON rows of the warehouse, never pickles on the (shared) instance storage.
    resources={
        "hybridops": HybridopsResource(),
        "io_manager": WarehouseIOManager(hybridops=HybridopsResource()),
    },
)
