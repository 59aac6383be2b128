"""Step outputs are JSON rows of the warehouse (either backend), not pickles on the instance storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridops.errors import HybridopsError
from hybridops.settings import Settings
from hybridops.warehouse.outputs import read_output, write_output


@pytest.mark.parametrize("backend", ["duckdb", "lakehouse"])
def test_an_output_round_trips_and_the_last_write_wins(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__BACKEND", backend)
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(HybridopsError, match="no stored output of asset training_set: materialize it first"):
        read_output(settings, "training_set", "")
    value = {"path": "/x.parquet", "null_rates": {"temp": np.float64(0.25)}, "plan": {"train": ["2013-01"]}}
    write_output(settings, "training_set", "", "run-1", value)
    write_output(settings, "candidate_model", "", "run-1", {"version": "1"})
    assert read_output(settings, "training_set", "") == {
        "path": "/x.parquet",
        "null_rates": {"temp": 0.25},
        "plan": {"train": ["2013-01"]},
    }
    write_output(settings, "training_set", "", "run-2", {"path": "/y.parquet"})
    assert read_output(settings, "training_set", "") == {"path": "/y.parquet"}
    assert read_output(settings, "candidate_model", "") == {"version": "1"}
    with pytest.raises(TypeError, match="JSON cannot keep"):
        write_output(settings, "training_set", "", "run-3", {"frame": object()})


@pytest.mark.parametrize("profile", ["hybrid", "dataops", "mlops"])
def test_every_code_location_keeps_step_outputs_in_the_warehouse(profile: str) -> None:
    from dagster_project.build import build_definitions
    from dagster_project.io_manager import WarehouseIOManager
    from hybridops.settings import OrchestrationSettings

    defs = build_definitions(profile, OrchestrationSettings())  # type: ignore[arg-type]
    assert isinstance(defs.resources["io_manager"], WarehouseIOManager)
