"""Each profile's code location loads on its own, in a fresh process, as `dagster api grpc -m` loads it.

``dataops`` holds the DataOps half and never imports Feast or MLflow; ``mlops`` holds the ML half and sees
the warehouse tables another release produces as external assets; ``hybrid`` holds both, and every asset
is defined once (all three come from ``dagster_project.build``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LOAD = """
import json, sys, importlib
import dagster as dg
module = importlib.import_module("dagster_project.{module}")
defs = module.defs()
repo = defs.get_repository_def()
repo.load_all_definitions()
graph = defs.resolve_asset_graph()
print(json.dumps({{
    "materializable": sorted(k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_materializable),
    "external": sorted(k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable),
    "sensors": sorted(s.name for s in defs.sensors),
    "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
    "imported": sorted(m for m in ("feast", "mlflow", "lightgbm", "sklearn") if m in sys.modules),
}}))
"""

DATAOPS_ASSETS = {
    "raw_flights", "raw_weather", "raw_planes", "raw_airlines", "raw_airports", "flights", "weather",
    "planes", "airlines", "airports", "spc_daily_metrics", "fct_flights", "on_time_report",
}  # fmt: skip
MLOPS_ASSETS = {
    "feature_tables", "feast_registry", "online_features", "training_set", "candidate_model",
    "champion_model", "batch_predictions", "model_monitoring", "feature_skew_audit",
}  # fmt: skip


def _load(module: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LOAD.format(module=module)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def loaded() -> dict[str, dict]:
    return {name: _load(module) for name, module in (
        ("hybrid", "definitions"), ("dataops", "definitions_dataops"), ("mlops", "definitions_mlops"),
    )}  # fmt: skip


def test_dataops_has_the_data_half_and_imports_no_feast_or_mlflow(loaded):
    dataops = loaded["dataops"]
    assert set(dataops["materializable"]) == DATAOPS_ASSETS
    assert dataops["external"] == []
    assert dataops["imported"] == []
    assert dataops["sensors"] == ["hybridops_automation", "source_arrivals"]
    assert dataops["jobs"] == ["dimensions", "monthly_partition", "report"]


def test_mlops_has_the_ml_half_reading_the_warehouse_as_external_assets(loaded):
    mlops = loaded["mlops"]
    assert set(mlops["materializable"]) == MLOPS_ASSETS
    assert mlops["external"] == ["fct_flights", "planes", "weather"]
    assert mlops["sensors"] == ["hybridops_automation", "retrain_on_drift_or_spc", "warehouse_arrivals"]
    assert "source_arrivals" not in mlops["sensors"]
    assert mlops["jobs"] == ["monthly_partition", "scoring", "skew_audit", "training"]


def test_hybrid_is_both_halves(loaded):
    hybrid = loaded["hybrid"]
    assert set(hybrid["materializable"]) == DATAOPS_ASSETS | MLOPS_ASSETS
    assert hybrid["external"] == []
    assert hybrid["sensors"] == ["hybridops_automation", "retrain_on_drift_or_spc", "source_arrivals"]
    assert hybrid["jobs"] == [
        "dimensions",
        "monthly_partition",
        "report",
        "scoring",
        "skew_audit",
        "training",
    ]
