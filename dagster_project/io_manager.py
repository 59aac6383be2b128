"""The code location's IO manager: step outputs as JSON rows of the warehouse (hybridops.warehouse.outputs)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from dagster_project.resources import HybridopsResource
from hybridops.warehouse.outputs import read_output, write_output


def _partition(context: dg.OutputContext | dg.InputContext) -> str:
    return ",".join(sorted(context.asset_partition_keys)) if context.has_asset_partitions else ""


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Outputs of assets that return a value (the training assets' descriptions) kept in the warehouse."""

    hybridops: HybridopsResource

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        write_output(
            self.hybridops.settings(),
            context.asset_key.to_user_string(),
            _partition(context),
            context.run_id,
            obj,
        )

    def load_input(self, context: dg.InputContext) -> Any:
        return read_output(self.hybridops.settings(), context.asset_key.to_user_string(), _partition(context))
