"""The hybridops code location, profile `hybrid` (see `dagster_project.build`)."""

import dagster as dg

from dagster_project.build import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions("hybrid")
