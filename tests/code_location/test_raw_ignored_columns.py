"""A source file with columns the table does not have: its rows load, the extra columns are not read,
and the raw asset says so (a warning in the run's log and ``ignored_columns`` in its metadata), while the
landed copy keeps them byte for byte."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg

from dagster_project.ingest import raw_assets
from dagster_project.resources import HybridopsResource
from hybridops.settings import Settings
from hybridops.warehouse.db import connect


def test_an_extra_column_is_named_and_kept_in_the_landed_file(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    data = b"carrier,name,alliance\nUA,United Air Lines Inc.,Star\nAA,American Airlines Inc.,oneworld\n"
    (source / "airlines.csv").write_bytes(data)
    home = tmp_path / "home"
    raw_airlines = next(a for a in raw_assets if a.key == dg.AssetKey("raw_airlines"))
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize(
            [raw_airlines],
            instance=instance,
            resources={"hybridops": HybridopsResource(home=str(home), source_dir=str(source))},
        )
        assert result.success
        (materialization,) = result.asset_materializations_for_node("raw_airlines")
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        warnings = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.level == logging.WARNING and "alliance" in entry.user_message
        ]
    assert metadata["ignored_columns"] == "alliance" and metadata["rows_read"] == 2
    (warning,) = warnings
    assert str(source / "airlines.csv") in warning and "not columns of airlines" in warning
    assert Path(metadata["landed_file"]).read_bytes() == data
    with connect(Settings(home=home)) as con:
        staged = con.execute("select * from stg_airlines order by carrier").df()
    assert "alliance" not in staged.columns and staged["carrier"].tolist() == ["AA", "UA"]
