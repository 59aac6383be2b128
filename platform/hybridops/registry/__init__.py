"""The model registry: champion/challenger aliases, the promotion gate, the alias history and rollback.

Pure Python over MLflow's model registry (no Dagster): see :mod:`hybridops.registry.models`.
"""

from hybridops.registry.client import ModelRef, parse_model_ref, registry_client
from hybridops.registry.gate import GateDecision, decide
from hybridops.registry.models import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    AliasEvent,
    LoadedModel,
    ModelVersionInfo,
    alias_history,
    apply_gate,
    champion,
    load_model,
    promote,
    record_alias_event,
    register_candidate,
    resolve,
    rollback,
    version_events,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "AliasEvent",
    "GateDecision",
    "LoadedModel",
    "ModelRef",
    "ModelVersionInfo",
    "alias_history",
    "apply_gate",
    "champion",
    "decide",
    "load_model",
    "parse_model_ref",
    "promote",
    "record_alias_event",
    "register_candidate",
    "registry_client",
    "resolve",
    "rollback",
    "version_events",
]
