"""Render and lint ``charts/hybridops`` offline with the Helm v4 SDK (``helm_python``); no helm binary.

Profiles are values files under ``charts/hybridops/profiles/``; extra values files are layered on top in
order (later wins), like ``helm template -f profile.yaml -f extra.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from hybridops import bundled
from hybridops.errors import HybridopsError

CHART_DIR = bundled.chart_dir()
PROFILES_DIR = CHART_DIR / "profiles"
CI_DIR = CHART_DIR / "ci"
DEFAULT_NAMESPACE = "hybridops"
DEFAULT_RELEASE = "hybridops"
_SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}


class ChartError(HybridopsError):
    """Invalid values or a template that failed: the message is Helm's (including ``fail`` messages)."""


@dataclass(frozen=True)
class LintFinding:
    severity: str
    path: str
    message: str


def profiles() -> list[str]:
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def ci_values_files() -> list[Path]:
    return sorted(CI_DIR.glob("*-values.yaml"))


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def profile_path(profile: str) -> Path:
    path = PROFILES_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise ChartError(f"unknown profile {profile!r}: choose one of {', '.join(profiles())}")
    return path


def user_values(
    profile: str, values_files: Sequence[Path] = (), overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The values a user passes: the profile, then each file, then ``overrides`` (later wins)."""
    values: dict[str, Any] = {}
    for path in [profile_path(profile), *map(Path, values_files)]:
        values = _merge(values, yaml.safe_load(path.read_text()) or {})
    return _merge(values, overrides or {})


def render(
    profile: str,
    values_files: Sequence[Path] = (),
    namespace: str = DEFAULT_NAMESPACE,
    release: str = DEFAULT_RELEASE,
    overrides: dict[str, Any] | None = None,
    chart_dir: Path = CHART_DIR,
) -> dict[str, str]:
    """Render the chart offline: ``{template path: manifest}`` for every template that produced objects.

    Values are checked against ``values.schema.json`` first (unknown keys, types, enums), then the
    templates run (their ``fail`` checks catch invalid combinations). Both raise :class:`ChartError`.
    """
    values = user_values(profile, values_files, overrides)
    chart = helm.Chart.load(str(chart_dir))
    try:
        chart.validate_schema(values)
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    except helm.HelmError as exc:
        raise ChartError(str(exc)) from exc
    finally:
        chart.close()
    return {
        path: text
        for path, text in sorted(rendered.items())
        if path.endswith((".yaml", ".yml")) and any(yaml.safe_load_all(text))
    }


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every object of a render, in template order."""
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


def render_to_dir(
    profile: str,
    out: Path,
    values_files: Sequence[Path] = (),
    namespace: str = DEFAULT_NAMESPACE,
    release: str = DEFAULT_RELEASE,
    overrides: dict[str, Any] | None = None,
) -> list[Path]:
    """Render into ``out``: one file per template (``out/<template file name>``)."""
    rendered = render(profile, values_files, namespace, release, overrides)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for template, text in rendered.items():
        path = out / Path(template).name
        path.write_text(text.lstrip("\n"))
        written.append(path)
    return written


def lint(
    strict: bool = True,
    values: dict[str, Any] | None = None,
    kube_version: str | None = None,
    chart_dir: Path = CHART_DIR,
) -> list[LintFinding]:
    """``helm lint`` findings as data (info-level findings included; ``strict`` makes warnings errors)."""
    report = helm.lint(
        str(chart_dir),
        values,
        strict=strict,
        namespace=DEFAULT_NAMESPACE,
        with_subcharts=True,
        kube_version=kube_version,
    )
    findings = [
        LintFinding(_SEVERITY.get(int(m["severity"]), "unknown"), str(m["path"]), str(m["error"]))
        for m in report.get("messages", [])
    ]
    findings.extend(LintFinding("error", str(chart_dir), str(e)) for e in report.get("errors", []))
    return findings
