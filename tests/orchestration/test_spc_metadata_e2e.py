"""The SPC asset's metadata as the Dagster UI gets it: typed, rounded, with units, and the chart as a PNG."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_spc_metadata_is_typed_rounded_with_units_and_the_chart_is_a_png(pipeline_run) -> None:
    import dagster as dg

    from hybridops.settings import Settings

    home, _ = pipeline_run
    instance = dg.DagsterInstance.from_config(str(Settings(home=home).dagster_home))
    try:
        event = instance.get_latest_materialization_event(dg.AssetKey("spc_daily_metrics"))
    finally:
        instance.dispose()
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata

    assert isinstance(metadata["days"], dg.IntMetadataValue) and metadata["days"].value >= 28
    assert isinstance(metadata["violations"], dg.IntMetadataValue)
    # one alarm per cause: never more alarms than rule runs, and the alarm table to read them
    assert isinstance(metadata["alarms"], dg.IntMetadataValue)
    assert isinstance(metadata["error_alarms"], dg.IntMetadataValue)
    assert metadata["error_alarms"].value <= metadata["alarms"].value <= metadata["violations"].value
    table = metadata["alarm_table"]
    assert isinstance(table, dg.MarkdownMetadataValue)
    assert table.value.startswith("| raised | days | severity | metrics |") or table.value == "No SPC alarm."
    floats = {k: v.value for k, v in metadata.items() if isinstance(v, dg.FloatMetadataValue)}
    assert len(floats) == 16, sorted(floats)  # mean, centre, UCL, LCL of four metrics
    for key, value in floats.items():
        assert re.fullmatch(r"[a-z_]+_(mean|center|ucl|lcl) \[(flights/day|%|min|mph)\]", key), key
        assert value is not None and round(value, 2) == value, (key, value)
    assert 0 < floats["cancellation_rate_mean [%]"] < 100  # a percentage, not a fraction

    chart = metadata["control_chart_dep_delay_mean"]
    assert isinstance(chart, dg.MarkdownMetadataValue)
    match = re.fullmatch(r"!\[[^\]]+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", chart.value)
    assert match, chart.value[:80]
    png = base64.b64decode(match.group(1))
    path = metadata["control_chart_dep_delay_mean_png"]
    assert isinstance(path, dg.PathMetadataValue)
    assert Path(path.value).parent == home / "reports" / "spc"
    assert Path(path.value).read_bytes() == png and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(metadata["control_chart_dep_delay_mean_table"], dg.MarkdownMetadataValue)
