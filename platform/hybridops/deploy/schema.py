"""Generate the chart's ``values.yaml`` and ``values.schema.json`` from :mod:`hybridops.deploy.values`.

``python -m hybridops.deploy.schema`` rewrites both files; ``--check`` exits 1 (and names the files) when
the committed files differ from what the models generate, so CI fails on a stale schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from hybridops import bundled
from hybridops.deploy.values import ChartValues

CHART_DIR = bundled.chart_dir()
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_HEADER = """\
# Default values of the hybridops chart. GENERATED from hybridops.deploy.values (the pydantic models that
# also generate values.schema.json): edit the models, then run `python -m hybridops.deploy.schema`.
# Profiles (profiles/*.yaml) switch components on and off; see docs/deploy.md.
"""


def _close_objects(node: Any) -> None:
    """Set ``additionalProperties: false`` on every object schema that lists its properties."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _close_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_objects(value)


def values_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the chart values."""
    schema = ChartValues.model_json_schema(by_alias=True, mode="validation")
    _close_objects(schema)
    return {"$schema": SCHEMA_DIALECT, **schema}


def schema_text() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=True) + "\n"


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _emit(model: BaseModel, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        value = getattr(model, name)
        if field.description:
            lines.extend(f"{pad}# {line}" for line in field.description.splitlines())
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{key}:")
            _emit(value, indent + 1, lines)
            continue
        dumped = model.model_dump(mode="json", by_alias=True, include={name})[key]
        if isinstance(dumped, dict | list) and dumped:
            block = yaml.safe_dump(dumped, default_flow_style=False, sort_keys=False, width=10_000)
            lines.append(f"{pad}{key}:")
            lines.extend(f"{pad}  {line}" for line in block.rstrip("\n").splitlines())
        else:
            lines.append(f"{pad}{key}: {_scalar(dumped)}")


def values_yaml_text() -> str:
    """The chart's default values.yaml, with each field's description as a comment."""
    lines: list[str] = []
    _emit(ChartValues(), 0, lines)
    return _HEADER + "\n".join(lines) + "\n"


def generated_files(chart_dir: Path = CHART_DIR) -> dict[Path, str]:
    return {
        chart_dir / "values.schema.json": schema_text(),
        chart_dir / "values.yaml": values_yaml_text(),
    }


def stale_files(chart_dir: Path = CHART_DIR) -> list[Path]:
    """Generated files whose committed content differs from what the models generate."""
    return [
        path
        for path, text in generated_files(chart_dir).items()
        if not path.exists() or path.read_text() != text
    ]


def write(chart_dir: Path = CHART_DIR) -> list[Path]:
    changed = stale_files(chart_dir)
    for path, text in generated_files(chart_dir).items():
        path.write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridops.deploy.schema", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the committed files are stale")
    parser.add_argument("--chart-dir", type=Path, default=CHART_DIR)
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.chart_dir)
        for path in stale:
            print(f"stale: {path} (run python -m hybridops.deploy.schema)", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.chart_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
