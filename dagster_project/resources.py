"""Typed Dagster resources: the one bridge from Dagster run config to hybridops settings."""

import dagster as dg

from hybridops.orchestration.orphans import die_with_run_worker
from hybridops.settings import Settings, load_settings


class HybridopsResource(dg.ConfigurableResource):
    """hybridops settings for a run.

    Fields left empty fall back to the settings model (environment, then local defaults), read when the
    run starts, never at import time.
    """

    home: str | None = None
    source_dir: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every step uses this resource (directly or through the IO manager): a step process of the
        # multiprocess executor dies with its run worker instead of finishing as an orphan.
        die_with_run_worker()

    def settings(self) -> Settings:
        overrides = {
            key: value for key, value in (("home", self.home), ("source_dir", self.source_dir)) if value
        }
        return load_settings(**overrides)
