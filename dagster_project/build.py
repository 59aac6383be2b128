"""The three code locations from one list: ``hybrid`` (everything), ``dataops`` and ``mlops``.

* ``dataops``: ingest, quality, SPC, warehouse and the report, with the source sensor; nothing in it
  imports Feast or MLflow.
* ``mlops``: features (Feast), training, scoring and monitoring, with the retraining loop. The warehouse
  tables it reads are produced by another release: here they are external assets (``dg.AssetSpec``) of
  the same keys and partitions, so the graph, the partitions and the automation are the same.
* ``hybrid``: both halves in one location.

Settings are read when the definitions load (``@dg.definitions`` in the modules ``definitions*``), never
at import time: automation on or off, the sensors' interval and the executor follow the environment of
the process that loads them.
"""

from __future__ import annotations

import importlib
import warnings

import dagster as dg

from dagster_project import automation
from dagster_project.executors import executor_for
from dagster_project.io_manager import WarehouseIOManager
from dagster_project.jobs import jobs_for
from dagster_project.months import BETA_WARNING, PREVIEW_WARNING
from dagster_project.partitions import monthly
from dagster_project.resources import HybridopsResource
from hybridops.settings import PROFILES, OrchestrationSettings, Profile, QualitySettings, load_settings

# The DataOps tables the ML half reads: external assets of the mlops location.
WAREHOUSE_INPUTS = {
    "fct_flights": True,  # partitioned by month
    "weather": True,
    "planes": False,
}


def _data_assets(quality_settings: QualitySettings) -> list[dg.AssetsDefinition]:
    from dagster_project import ingest, quality, spc, warehouse

    return [
        *ingest.raw_assets,
        *quality.validated_assets(quality_settings),
        spc.spc_daily_metrics,
        warehouse.fct_flights,
        warehouse.on_time_report,
    ]


def _ml_assets() -> tuple[list[dg.AssetsDefinition], list[dg.SensorDefinition]]:
    # Imported here: the dataops location must never import Feast or MLflow (these modules do).
    features = importlib.import_module("dagster_project.features")
    monitoring = importlib.import_module("dagster_project.monitoring")
    training = importlib.import_module("dagster_project.training")
    assets = [
        features.feature_tables,
        features.feast_registry,
        features.online_features,
        training.training_set,
        training.candidate_model,
        training.champion_model,
        monitoring.batch_predictions,
        monitoring.model_monitoring,
        monitoring.feature_skew_audit,
    ]
    return assets, [monitoring.retrain_sensor]


def _external_warehouse() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            name,
            group_name="warehouse",
            owners=["team:data"],
            partitions_def=monthly if partitioned else None,
            description=f"`{name}`, produced by the DataOps release into the shared warehouse.",
        )
        for name, partitioned in WAREHOUSE_INPUTS.items()
    ]


def _automated(
    assets: list[dg.AssetsDefinition], external: list[dg.AssetSpec], settings: OrchestrationSettings
) -> list:
    monthly = [k.to_user_string() for a in assets if a.partitions_def for k in a.keys]
    monthly += [s.key.to_user_string() for s in external if s.partitions_def]
    whole = [k.to_user_string() for a in assets if not a.partitions_def for k in a.keys]
    whole += [s.key.to_user_string() for s in external if not s.partitions_def]
    table = automation.conditions(settings, monthly, whole)
    out = []
    for assets_def in assets:
        by_key = {
            key: table[key.to_user_string()] for key in assets_def.keys if key.to_user_string() in table
        }
        out.append(assets_def.with_attributes(automation_condition=by_key) if by_key else assets_def)
    return out


def build_definitions(
    profile: Profile,
    orchestration: OrchestrationSettings | None = None,
    quality: QualitySettings | None = None,
) -> dg.Definitions:
    """The definitions of ``profile``, with automation and executor as ``orchestration`` says and the
    validated tables' check specs as ``quality`` says.

    What is not given is read from the settings (``HYBRIDOPS_ORCHESTRATION__*``, ``HYBRIDOPS_QUALITY__*``)
    when the code location loads, never when its modules are imported.
    """
    # The asset modules use a beta parameter (backfill_policy) and a preview feature (partitioned checks)
    # on purpose; their warnings would greet every user of the code location once per asset. Silenced only
    # while the modules load, never for the process.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=BETA_WARNING, category=dg.BetaWarning)
        warnings.filterwarnings("ignore", message=PREVIEW_WARNING, category=dg.PreviewWarning)
        return _build(profile, orchestration, quality)


def _build(
    profile: Profile, orchestration: OrchestrationSettings | None, quality: QualitySettings | None
) -> dg.Definitions:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if orchestration is None or quality is None:
        loaded = load_settings()
        orchestration, quality = orchestration or loaded.orchestration, quality or loaded.quality
    settings = orchestration
    data = profile in ("hybrid", "dataops")
    ml = profile in ("hybrid", "mlops")
    assets: list = []
    sensors: list[dg.SensorDefinition] = []
    if data:
        from dagster_project.arrivals import source_sensor

        assets += _data_assets(quality)
        sensors.append(source_sensor(settings))
    if ml:
        ml_assets, ml_sensors = _ml_assets()
        assets += ml_assets
        sensors += [make(settings) for make in ml_sensors]
        if not data:
            from dagster_project.warehouse_inputs import warehouse_sensor

            assets += _external_warehouse()
            sensors.append(warehouse_sensor(settings))
    sensors.append(automation.automation_sensor(settings))
    specs = [a for a in assets if isinstance(a, dg.AssetSpec)]
    return dg.Definitions(
        assets=_automated([a for a in assets if isinstance(a, dg.AssetsDefinition)], specs, settings) + specs,
        jobs=jobs_for(data, ml),
        sensors=sensors,
        # Step outputs as JSON rows of the warehouse, never pickles on the (shared) instance storage.
        resources={
            "hybridops": HybridopsResource(),
            "io_manager": WarehouseIOManager(hybridops=HybridopsResource()),
        },
        executor=executor_for(settings.executor),
    )
