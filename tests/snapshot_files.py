"""The generated files that tests compare against, and the one command that rewrites them.

``make snapshots`` (``python tests/snapshot_files.py``) regenerates the chart's ``values.yaml`` and
``values.schema.json`` (from the pydantic models), the rendered chart of every profile
(``tests/deploy/golden/<profile>.yaml``) and the code location's shape
(``tests/code_location/snapshots/definitions.json``); review the diff before committing it. The tests only
compare: a difference or a missing file fails with ``run `make snapshots` to accept``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
GOLDEN_DIR = TESTS / "deploy" / "golden"
DEFINITIONS_SNAPSHOT = TESTS / "code_location" / "snapshots" / "definitions.json"
ACCEPT = "run `make snapshots` to accept"


def golden_path(profile: str) -> Path:
    return GOLDEN_DIR / f"{profile}.yaml"


def golden_text(profile: str) -> str:
    """The profile rendered with the CI's existing Secrets (generated Secrets would differ every render)."""
    from hybridops.deploy import chart

    rendered = chart.render(profile, [chart.CI_DIR / "existing-secrets-values.yaml"])
    return "".join(f"# Source: {path}\n{body.strip()}\n---\n" for path, body in rendered.items())


def definitions_shape() -> dict[str, Any]:
    """The code location's shape: assets (groups, owners, deps, automation, pools), checks, jobs, schedules, sensors."""
    from dagster_project import definitions

    defs = definitions.defs()
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "owners": sorted(node.owners),
            "partitioned": node.partitions_def is not None,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
            "pools": sorted(node.pools or ()),
        }
    checks = sorted(
        f"{check_key.asset_key.to_user_string()}:{check_key.name}"
        + (" (blocking)" if graph.get_check_spec(check_key).blocking else "")
        for check_key in graph.asset_check_keys
    )
    return {
        "assets": assets,
        "checks": checks,
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")),
        "schedules": sorted(schedule.name for schedule in defs.schedules or ()),
        "sensors": sorted(
            f"{sensor.name} ({sensor.default_status.value.lower()})" for sensor in defs.sensors or ()
        ),
    }


def definitions_text() -> str:
    return json.dumps(definitions_shape(), indent=2, sort_keys=True) + "\n"


def assert_matches(path: Path, text: str) -> None:
    """The test side: compare only; never write."""
    if not path.exists():
        raise AssertionError(f"{path} is missing: {ACCEPT}")
    if path.read_text() != text:
        raise AssertionError(f"{path} differs from what the code generates: {ACCEPT}")


def main() -> int:
    from hybridops.deploy import chart, schema

    # values.yaml first: the renders below read it.
    written = list(schema.write())
    files = {golden_path(profile): golden_text(profile) for profile in chart.profiles()}
    files[DEFINITIONS_SNAPSHOT] = definitions_text()
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    for path in written:
        print(f"wrote {path}")
    print("snapshots up to date" if not written else f"{len(written)} file(s) rewritten: review `git diff`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
