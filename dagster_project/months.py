"""Monthly assets that run one month or a whole range in one step (single-run backfills).

A monthly asset asks :func:`months_of` for the months of its run. A range run records one materialization
per month with the same metadata (Dagster repeats the step's); :func:`observe_months` records each month's
own numbers as an observation of that partition, so per-month values stay plotted in the UI and the run
summary reads them from there.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from dagster_project.partitions import monthly

# `backfill_policy` is a beta parameter of @dg.asset, chosen knowingly; dagster_project.definitions silences
# its warning while the asset modules are imported (a scoped filter: process-wide ones are not ours to set).
BETA_WARNING = "Parameter `backfill_policy`"
# One run for a backfill of many months: per-run set-up and per-step events are paid once, not per month.
SINGLE_RUN = dg.BackfillPolicy.single_run()
MONTHLY = {"partitions_def": monthly, "backfill_policy": SINGLE_RUN}


def months_of(context: dg.AssetExecutionContext) -> list[str]:
    """The month keys of this run, oldest first."""
    return list(context.partition_keys)


def observe_months(context: dg.AssetExecutionContext, by_month: Mapping[str, Mapping[str, Any]]) -> None:
    """Each month's metadata as an observation of its partition (one month or many: the same record)."""
    for month, metadata in by_month.items():
        context.log_event(
            dg.AssetObservation(asset_key=context.asset_key, partition=month, metadata=metadata)
        )
