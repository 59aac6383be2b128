"""Monthly assets that run one month or a whole range of months in one step.

A monthly asset asks :func:`months_of` for the months of its run. A range run records one materialization
per month with the same metadata (Dagster repeats the step's); :func:`observe_months` records each month's
own numbers as an observation of that partition, so per-month values stay plotted in the UI and the run
summary reads them from there.
"""

import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg

from dagster_project.partitions import monthly

# `backfill_policy` is a beta parameter of @dg.asset, chosen knowingly; its warning would greet every user
# of the code location (UI, CLI, tests) once per monthly asset.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
# A backfill of N months launched from the UI or by automation is N runs (one pod each in the cluster, run
# side by side up to the instance's run limit). `hybridops run` does not backfill: it executes its ranges
# in-process as one run each (Dagster's partition-range tags), so the laptop keeps its single-run speed.
ONE_MONTH_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
MONTHLY = {"partitions_def": monthly, "backfill_policy": ONE_MONTH_PER_RUN}


def months_of(context: dg.AssetExecutionContext) -> list[str]:
    """The month keys of this run, oldest first (dynamic keys are stored in arrival order)."""
    return sorted(context.partition_keys)


def observe_months(context: dg.AssetExecutionContext, by_month: Mapping[str, Mapping[str, Any]]) -> None:
    """Each month's metadata as an observation of its partition (one month or many: the same record)."""
    for month, metadata in by_month.items():
        context.log_event(
            dg.AssetObservation(asset_key=context.asset_key, partition=month, metadata=metadata)
        )
