"""Typed Dagster resources: the one bridge from Dagster run config to hybridops settings."""

import dagster as dg

from hybridops.settings import Settings, load_settings


class HybridopsResource(dg.ConfigurableResource):
    """hybridops settings for a run.

    Fields left empty fall back to the settings model (environment, then local defaults), read when the
    run starts, never at import time.
    """

    home: str | None = None
    source_dir: str | None = None

    def settings(self) -> Settings:
        overrides = {
            key: value for key, value in (("home", self.home), ("source_dir", self.source_dir)) if value
        }
        return load_settings(**overrides)
