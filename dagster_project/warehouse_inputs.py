"""The mlops location's view of the warehouse another release fills: months and updates as events.

The DataOps tables are external assets here (no run of this location materializes them). This sensor
reads their per-month fingerprints, adds new months as partitions and records a runless materialization
for each new or changed month (and reference table), so the ML half's automation follows as it does in
the hybrid location.
"""

from __future__ import annotations

import json

import dagster as dg

from dagster_project.automation import default_status
from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from hybridops.settings import OrchestrationSettings
from hybridops.warehouse.db import connect
from hybridops.warehouse.fingerprints import MONTHLY, table_fingerprints


def warehouse_sensor(settings: OrchestrationSettings) -> dg.SensorDefinition:
    @dg.sensor(
        name="warehouse_arrivals",
        default_status=default_status(settings),
        minimum_interval_seconds=settings.sensor_interval_seconds,
        description="New or changed months of the shared warehouse -> partitions and asset events.",
    )
    def warehouse_arrivals(context: dg.SensorEvaluationContext, hybridops: HybridopsResource):
        config = hybridops.settings()
        if not config.warehouse_db.exists():
            return dg.SkipReason(f"no warehouse at {config.warehouse_db} yet")
        with connect(config.warehouse_db, read_only=True) as con:
            now = table_fingerprints(con)
        before: dict[str, dict[str, str]] = json.loads(context.cursor) if context.cursor else {}
        events = []
        months: set[str] = set()
        for table, prints in now.items():
            for key, value in prints.items():
                if before.get(table, {}).get(key) == value:
                    continue
                partition = key if table in MONTHLY else None
                if partition:
                    months.add(partition)
                events.append(
                    dg.AssetMaterialization(
                        asset_key=table, partition=partition, metadata={"fingerprint": value}
                    )
                )
        if not events:
            return dg.SkipReason("the warehouse tables are unchanged")
        known = set(context.instance.get_dynamic_partitions(monthly.name))
        new = sorted(months - known)
        return dg.SensorResult(
            asset_events=events,
            dynamic_partitions_requests=[monthly.build_add_request(new)] if new else [],
            cursor=json.dumps(now, sort_keys=True),
        )

    return warehouse_arrivals
