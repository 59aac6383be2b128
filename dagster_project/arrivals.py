"""The source sensor: new or changed months in the source folder become partitions and ingest runs.

Its cursor holds what was seen of each source file (``hybridops.ingest.arrivals``): a file is read again
only when its size or modification time changed. Each tick adds the new months as partitions and requests
one run per month over the raw assets of the tables that changed in it (the run key is the content's
digest: the same content is never requested twice); a changed reference file requests its raw asset.
Everything after the roots follows by declarative automation (``dagster_project.automation``).
"""

from __future__ import annotations

import dagster as dg

from dagster_project.automation import default_status
from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from hybridops.errors import HybridopsError
from hybridops.ingest.arrivals import Arrivals, decode_state, look, run_key
from hybridops.ingest.sources import MONTHLY_TABLES, TABLES, resolve_source_dir
from hybridops.settings import OrchestrationSettings

ROOTS = [dg.AssetKey(f"raw_{table}") for table in TABLES]


def source_sensor(settings: OrchestrationSettings) -> dg.SensorDefinition:
    @dg.sensor(
        name="source_arrivals",
        target=dg.AssetSelection.assets(*ROOTS),
        default_status=default_status(settings),
        minimum_interval_seconds=settings.sensor_interval_seconds,
        description="New or changed months in the source folder -> partitions and ingest runs.",
    )
    def source_arrivals(context: dg.SensorEvaluationContext, hybridops: HybridopsResource):
        try:
            source_dir = resolve_source_dir(hybridops.settings())
            arrivals = look(source_dir, decode_state(context.cursor))
        except HybridopsError as exc:
            return dg.SkipReason(str(exc))
        if context.cursor is None:
            _adopt_loaded(context.instance, arrivals)
        skipped = "; ".join(arrivals.skipped)
        if skipped:  # a file not whole (still written, gone, empty) is never requested: named instead
            context.log.warning(f"not read this time: {skipped}")
        if arrivals.empty:
            if arrivals.files_read:  # read, but nothing to load: remember what was seen
                context.update_cursor(arrivals.cursor())
            return dg.SkipReason(
                f"nothing new in {source_dir}" + (f"; not read: {skipped}" if skipped else "")
            )
        known = set(context.instance.get_dynamic_partitions(monthly.name))
        new_months = sorted(month for month in arrivals.months if month not in known)
        requests = []
        if arrivals.tables:
            digests = {t: arrivals.state[t].digests[""] for t in sorted(arrivals.tables)}
            requests.append(
                dg.RunRequest(
                    run_key=f"reference:{run_key(digests)}",
                    asset_selection=[dg.AssetKey(f"raw_{t}") for t in sorted(arrivals.tables)],
                    tags={"hybridops/trigger": "source_arrivals"},
                )
            )
        for month in sorted(arrivals.months):
            tables = sorted(arrivals.months[month])
            digests = {t: arrivals.state[t].digests[month] for t in tables if t in MONTHLY_TABLES}
            requests.append(
                dg.RunRequest(
                    run_key=f"{month}:{run_key(digests)}",
                    partition_key=month,
                    asset_selection=[dg.AssetKey(f"raw_{t}") for t in tables],
                    tags={"hybridops/trigger": "source_arrivals"},
                )
            )
        context.log.info(
            f"{source_dir}: read {', '.join(arrivals.files_read)}; new months {new_months or 'none'}, "
            f"changed months {sorted(arrivals.months)}, reference tables {sorted(arrivals.tables)}"
        )
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[monthly.build_add_request(new_months)] if new_months else [],
            cursor=arrivals.cursor(),
        )

    return source_arrivals


def _adopt_loaded(instance: dg.DagsterInstance, arrivals: Arrivals) -> None:
    """First look on an instance that already holds data (a home that `hybridops run` filled): what is
    loaded is the baseline, not loaded again; later changes are compared with the digests seen now."""
    for table in MONTHLY_TABLES:
        loaded = instance.get_materialized_partitions(dg.AssetKey(f"raw_{table}"))
        for month in list(arrivals.months):
            if month in loaded:
                arrivals.months[month].discard(table)
                if not arrivals.months[month]:
                    del arrivals.months[month]
    for table in list(arrivals.tables):
        if instance.get_latest_materialization_event(dg.AssetKey(f"raw_{table}")) is not None:
            arrivals.tables.discard(table)
