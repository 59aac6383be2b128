"""The one typed settings model of hybridops.

Every setting has its local (laptop) default here and is overridable from the environment with the
``HYBRIDOPS_`` prefix; nested fields use ``__`` (``HYBRIDOPS_QUALITY__MAX_BAD_ROW_RATIO=0.1``). The Helm
values schema is generated from these models, so this package is the single source of truth for local and
cluster defaults. Its modules deliberately import nothing else from hybridops, only each other.

One module per concept: the root :class:`Settings` and :func:`load_settings` (``root``), and one module per
section (``quality``, ``spc``, ``warehouse``, ``features``, ``training``, ``registry``, ``monitoring``,
``orchestration``, ``serving``). Every name is re-exported here: import from ``hybridops.settings``.
"""

from __future__ import annotations

from hybridops.settings.features import (
    FeastSettings,
    OnlineStore,
    RedisOnlineStore,
    SqliteOnlineStore,
)
from hybridops.settings.monitoring import EXPORTER_SOURCES, ExporterSource, MonitoringSettings
from hybridops.settings.orchestration import OrchestrationSettings
from hybridops.settings.quality import QualitySettings
from hybridops.settings.registry import GateSettings, MlflowSettings
from hybridops.settings.root import (
    FIRST_MONTH,
    LAST_MONTH,
    PROFILES,
    Profile,
    Settings,
    load_settings,
    monitoring_settings,
)
from hybridops.settings.serving import ServingSettings
from hybridops.settings.spc import Severity, SpcSettings
from hybridops.settings.training import ModelSettings, TrainingSettings
from hybridops.settings.warehouse import DuckDBWarehouse, LakehouseWarehouse, Warehouse

__all__ = [
    "EXPORTER_SOURCES",
    "FIRST_MONTH",
    "LAST_MONTH",
    "PROFILES",
    "DuckDBWarehouse",
    "ExporterSource",
    "FeastSettings",
    "GateSettings",
    "LakehouseWarehouse",
    "MlflowSettings",
    "ModelSettings",
    "MonitoringSettings",
    "OnlineStore",
    "OrchestrationSettings",
    "Profile",
    "QualitySettings",
    "RedisOnlineStore",
    "ServingSettings",
    "Settings",
    "Severity",
    "SpcSettings",
    "SqliteOnlineStore",
    "TrainingSettings",
    "Warehouse",
    "load_settings",
    "monitoring_settings",
]
