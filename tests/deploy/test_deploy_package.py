"""What ships: the chart as a Helm package (.tgz), and a wheel that carries the chart and infra/ and finds
them outside a source checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import helm_python as helm

from hybridops.deploy import chart

ROOT = Path(__file__).resolve().parents[2]


def test_the_chart_packages_into_a_tgz_that_renders_like_the_folder(tmp_path: Path) -> None:
    archive = Path(helm.package(str(chart.CHART_DIR), destination=str(tmp_path)))

    assert archive.name == "hybridops-0.1.0.tgz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {
        "hybridops/Chart.yaml",
        "hybridops/values.schema.json",
        "hybridops/files/rules/hybridops.yaml",
    } <= names
    assert "hybridops/templates/statefulset-postgresql.yaml" in names
    values = chart.user_values("hybrid")
    packaged = helm.Chart.load(str(archive))
    try:
        packaged.validate_schema(values)
        from_archive = packaged.render(values, name="hybridops", namespace="hybridops", is_install=True)
    finally:
        packaged.close()
    from_folder = chart.render("hybrid")
    assert set(from_folder) <= set(from_archive)
    assert _stable(chart.manifests(from_folder)) == _stable(
        chart.manifests({k: v for k, v in from_archive.items() if k in from_folder})
    )


def _stable(objects: list[dict]) -> list[dict]:
    """Objects without what each render draws anew: generated passwords and the checksums over them."""
    for obj in objects:
        if obj["kind"] == "Secret":
            obj.pop("data", None)
            obj.pop("stringData", None)
        template = (obj.get("spec") or {}).get("template") or {}
        notes = (template.get("metadata") or {}).get("annotations") or {}
        for key in [k for k in notes if k.startswith("checksum/")]:
            del notes[key]
    return objects


def _copy_source(target: Path) -> None:
    """The files a build reads (a clean copy: the build writes build/ and *.egg-info next to them)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for folder in ("platform", "dagster_project", "charts", "infra"):
        shutil.copytree(ROOT / folder, target / folder, ignore=ignore)


def test_the_wheel_carries_the_chart_and_infra_and_uses_them_outside_a_checkout(tmp_path: Path) -> None:
    source, out, site = tmp_path / "src", tmp_path / "wheels", tmp_path / "site"
    source.mkdir()
    _copy_source(source)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(source),
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = out.glob("hybridops-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(site)
    for path in chart.CHART_DIR.rglob("*"):
        if path.is_file():
            assert f"hybridops/_bundled/charts/hybridops/{path.relative_to(chart.CHART_DIR)}" in names
    for path in (ROOT / "infra").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert f"hybridops/_bundled/infra/{path.relative_to(ROOT / 'infra')}" in names
    assert "hybridops/cli/app.py" in names and "dagster_project/definitions.py" in names

    # Imported from the unpacked wheel (no checkout, no git around it): the chart renders, the CLI renders
    # it, monitor finds the rules, and a model records the image's git revision.
    script = """
import json, sys
import hybridops
from hybridops.deploy import chart
from hybridops.observability import monitor
from hybridops.training.tracking import git_commit
from hybridops.cli.app import app
app(["chart", "render", "--profile", "dataops", "--out", "rendered"], standalone_mode=False)
print(json.dumps({
    "package": hybridops.__file__,
    "chart": str(chart.CHART_DIR),
    "profiles": chart.profiles(),
    "objects": len(chart.manifests(chart.render("dataops"))),
    "rules": [p.name for p in monitor.RULES_DIR.glob("*.yaml")],
    "commit": git_commit(),
}))
"""
    env = {**os.environ, "PYTHONPATH": str(site), "HYBRIDOPS_GIT_COMMIT": "0123abcd" * 5}
    env.pop("HYBRIDOPS_HOME", None)
    ran = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    assert found["package"].startswith(str(site))
    assert found["chart"] == str(site / "hybridops" / "_bundled" / "charts" / "hybridops")
    assert found["profiles"] == chart.profiles()
    assert found["objects"] == len(chart.manifests(chart.render("dataops")))
    assert found["rules"] and found["commit"] == "0123abcd" * 5
    assert sorted(p.name for p in (tmp_path / "rendered").iterdir()) == sorted(
        Path(t).name for t in chart.render("dataops")
    )
