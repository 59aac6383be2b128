"""The hybridops code location, profile `mlops` (see `dagster_project.build`)."""

import dagster as dg

from dagster_project.build import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions("mlops")
