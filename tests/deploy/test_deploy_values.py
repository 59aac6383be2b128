"""The values schema is generated from the pydantic models, rejects unknown keys, and invalid
combinations fail the render with an explicit message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from snapshot_files import ACCEPT, assert_matches, golden_path, golden_text

from hybridops.deploy import chart, schema
from hybridops.deploy.values import ChartValues
from hybridops.settings import Settings


def test_generated_files_are_up_to_date() -> None:
    assert schema.stale_files() == [], ACCEPT
    assert schema.main(["--check"]) == 0


def test_check_fails_on_a_stale_schema(tmp_path: Path) -> None:
    for path, text in schema.generated_files(tmp_path).items():
        path.write_text(text)
    assert schema.main(["--check", "--chart-dir", str(tmp_path)]) == 0
    (tmp_path / "values.schema.json").write_text("{}\n")
    assert schema.main(["--check", "--chart-dir", str(tmp_path)]) == 1


def test_schema_is_draft_2020_12_and_closed() -> None:
    doc = schema.values_schema()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node["additionalProperties"] is False, sorted(node["properties"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)


def test_values_yaml_defaults_are_the_models_and_settings_defaults() -> None:
    values = yaml.safe_load((chart.CHART_DIR / "values.yaml").read_text())
    assert ChartValues.model_validate(values).model_dump(mode="json", by_alias=True) == values
    settings = Settings()
    assert values["hybridops"]["config"]["quality"] == settings.quality.model_dump(mode="json")
    assert values["hybridops"]["config"]["spc"] == settings.spc.model_dump(mode="json")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"dagster": {"replicaz": 2}}, "replicaz"),
        ({"unknownTopLevel": True}, "unknownTopLevel"),
        (
            {"monitoring": {"mode": "sidecar"}},
            "/monitoring/mode': value must be one of 'bundled', 'external'",
        ),
        ({"inference": {"image": {"tag": "latest"}}}, "tag"),
        ({"hybridops": {"config": {"quality": {"max_bad_row_ratio": 2}}}}, "max_bad_row_ratio"),
        (
            {"hybridops": {"config": {"monitoring": {"exporter_sources": ["skew"]}}}},
            "/hybridops/config/monitoring/exporter_sources/0': value must be one of",
        ),
        (
            {"hybridops": {"config": {"monitoring": {"exporter_sources": ["dagster", "dagster"]}}}},
            "/hybridops/config/monitoring/exporter_sources': items at 0 and 1 are equal",
        ),
    ],
)
def test_schema_rejects_invalid_values(overrides: dict, fragment: str) -> None:
    with pytest.raises(chart.ChartError, match=fragment):
        chart.render("hybrid", overrides=overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"postgresql": {"enabled": False}},
            "postgresql.enabled=false requires postgresql.external.host",
        ),
        (
            {"postgresql": {"enabled": False, "external": {"host": "db"}}},
            "postgresql.enabled=false requires postgresql.external.existingSecret",
        ),
        ({"redis": {"enabled": False}}, "redis.enabled=false requires redis.external.host"),
        (
            {"mlflow": {"enabled": False}, "hybridops": {"profile": "dataops"}},
            "inference.enabled=true requires mlflow.enabled=true",
        ),
        (
            {"mlflow": {"artifacts": {"type": "s3"}}},
            "mlflow.artifacts.type=s3 requires mlflow.artifacts.s3.bucket",
        ),
        (
            {"inference": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}},
            "inference.autoscaling.maxReplicas must be >= inference.autoscaling.minReplicas",
        ),
        # The exporter would report a source the release does not deploy as down forever.
        (
            {
                "mlflow": {"enabled": False},
                "inference": {"enabled": False},
                "hybridops": {"profile": "dataops"},
            },
            "exporter_sources lists mlflow, but mlflow.enabled=false: leave it out",
        ),
        (
            {
                "feast": {"enabled": False},
                "inference": {"enabled": False},
                "hybridops": {"profile": "dataops"},
            },
            "exporter_sources lists feast, but feast.enabled=false",
        ),
        ({"dagster": {"enabled": False}}, "exporter_sources lists dagster, but dagster.enabled=false"),
        (
            {
                "dagster": {"enabled": False},
                "hybridops": {"config": {"monitoring": {"exporter_sources": ["warehouse"]}}},
            },
            "exporter_sources lists warehouse, but dagster.enabled=false",
        ),
    ],
)
def test_invalid_combinations_fail_the_render(overrides: dict, message: str) -> None:
    """Combinations the schema cannot express fail in the templates with an explicit message.

    (``monitoring.mode`` is also checked by a template ``fail``, but Helm's schema check fires first.)
    """
    values = chart.user_values("hybrid", overrides=overrides)
    loaded = helm.Chart.load(str(chart.CHART_DIR))
    try:
        with pytest.raises(helm.HelmError, match=message):
            loaded.render(values, name="hybridops", namespace="hybridops")
    finally:
        loaded.close()


@pytest.mark.parametrize(
    ("profile", "overrides"),
    [
        # Without the exporter nothing reads the sources: no check.
        (
            "hybrid",
            {
                "mlflow": {"enabled": False},
                "inference": {"enabled": False},
                "exporter": {"enabled": False},
                "hybridops": {"profile": "dataops"},
            },
        ),
        (
            "hybrid",
            {
                "feast": {"enabled": False},
                "inference": {"enabled": False},
                "monitoring": {"enabled": False},
                "hybridops": {"profile": "dataops"},
            },
        ),
        # The sources narrowed to what is deployed (what profiles/dataops.yaml does).
        (
            "hybrid",
            {
                "mlflow": {"enabled": False},
                "feast": {"enabled": False},
                "inference": {"enabled": False},
                "hybridops": {
                    "profile": "dataops",
                    "config": {"monitoring": {"exporter_sources": ["dagster", "warehouse"]}},
                },
            },
        ),
        # Monitors in any namespace: none refers to a Secret (MLflow's is scraped through its login-free
        # metrics sidecar).
        ("hybrid", {"monitoring": {"mode": "external", "external": {"namespace": "hybridops"}}}),
        ("hybrid", {"monitoring": {"mode": "external", "external": {"namespace": "monitoring"}}}),
        (
            "hybrid",
            {
                "monitoring": {
                    "mode": "external",
                    "external": {"namespace": "monitoring", "serviceMonitors": False},
                }
            },
        ),
        ("dataops", {"monitoring": {"mode": "external", "external": {"namespace": "monitoring"}}}),
    ],
    ids=[
        "exporter-off",
        "monitoring-off",
        "sources-narrowed",
        "monitors-in-release",
        "monitors-elsewhere",
        "no-servicemonitors",
        "dataops",
    ],
)
def test_valid_neighbours_of_those_combinations_render(profile: str, overrides: dict) -> None:
    assert chart.render(profile, overrides=overrides)


def test_unknown_profile_is_named() -> None:
    with pytest.raises(chart.ChartError, match="unknown profile 'bogus'"):
        chart.render("bogus")


@pytest.mark.parametrize("profile", chart.profiles())
def test_golden_snapshot(profile: str) -> None:
    assert_matches(golden_path(profile), golden_text(profile))
