"""Declared dependencies against the code and the lock files.

Every third-party package the code imports is declared in pyproject.toml (the platform's modules in the
runtime dependencies, tests and benchmarks in the runtime or dev ones) with an upper bound; the lock files
hold every declared package at a version its range admits; and this environment is the locked one. The
settings package imports nothing of hybridops but its own modules (the one source of defaults stays a leaf).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCK = REPO / "requirements" / "lock.txt"
DEV_LOCK = REPO / "requirements" / "dev-lock.txt"
FIRST_PARTY = {"hybridops", "dagster_project"}
# Packages whose internals the code touches (docs/internals.md) and the dev tools: one exact version each.
EXACT = {"dagster", "feast", "lightgbm", "scipy"}
EXACT_DEV = {"pytest", "ruff", "mypy", "playwright", "httpx", "kubernetes-validate", "uv"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(group: str) -> dict[str, Requirement]:
    project = PYPROJECT["project"]
    texts = project["dependencies"] if group == "runtime" else project["optional-dependencies"][group]
    return {canonical(req.name): req for req in map(Requirement, texts)}


def lock_versions(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", path.read_text(), re.M)
    return {canonical(name): version for name, version in pins}


def imported_modules(paths: list[Path]) -> dict[str, Path]:
    """Absolute imports (full dotted names) of every module under ``paths``, with one file importing each."""
    found: dict[str, Path] = {}
    for base in paths:
        for file in sorted(base.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name, file)
    return found


def first_party_imports_outside(package: Path, name: str) -> list[str]:
    """Imports of first-party modules outside the package ``name`` (at ``package``), relative ones included."""
    problems = []
    for file in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                modules = [f"{'.' * node.level}{node.module or ''}"]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                inside = module == name or module.startswith(f"{name}.")
                if module.startswith(".") or (module.split(".")[0] in FIRST_PARTY and not inside):
                    problems.append(f"{file.name} imports {module}")
    return problems


@cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(md.packages_distributions())


@cache
def _dist_files(dist: str) -> frozenset[str]:
    return frozenset(str(f) for f in md.distribution(dist).files or ())


def distributions_of(module: str) -> set[str]:
    """The installed distributions providing ``module``; a namespace root (``google``) is narrowed to the
    distributions that ship the imported subpackage."""
    top = module.split(".")[0]
    dists = set(_packages_distributions().get(top, []))
    if len(dists) > 1 and "." in module:
        stem = "/".join(module.split(".")[:2])
        narrowed = {d for d in dists if any(f.startswith((f"{stem}/", f"{stem}.")) for f in _dist_files(d))}
        dists = narrowed or dists
    return {canonical(d) for d in dists}


def undeclared(paths: list[Path], declared: set[str], local: set[str] = frozenset()) -> list[str]:
    problems = []
    for module, file in imported_modules(paths).items():
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in FIRST_PARTY or top in local:
            continue
        dists = distributions_of(module)
        where = file.relative_to(REPO) if file.is_relative_to(REPO) else file
        if not dists:
            problems.append(f"{where} imports {module}, which no installed distribution provides")
        elif not dists & declared:
            problems.append(
                f"{where} imports {module} (from {sorted(dists)}), not declared in pyproject.toml"
            )
    return sorted(problems)


def test_the_platform_imports_only_declared_runtime_packages() -> None:
    paths = [REPO / "platform" / "hybridops", REPO / "dagster_project"]
    assert undeclared(paths, set(requirements("runtime"))) == []


def test_tests_and_benchmarks_import_only_declared_packages() -> None:
    paths = [REPO / "tests", REPO / "benchmarks"]
    local = {file.stem for base in paths for file in base.rglob("*.py")}
    declared = set(requirements("runtime")) | set(requirements("dev"))
    assert undeclared(paths, declared, local) == []


def test_the_settings_import_nothing_of_ours_but_each_other() -> None:
    package = REPO / "platform" / "hybridops" / "settings"
    assert first_party_imports_outside(package, "hybridops.settings") == []


def test_the_check_finds_a_settings_module_importing_the_platform(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("import pydantic\nfrom hybridops.settings.section import _Section\n")
    (tmp_path / "bad.py").write_text(
        "import hybridops.months\nfrom hybridops.files import x\nfrom .. import y\n"
    )
    problems = first_party_imports_outside(tmp_path, "hybridops.settings")
    assert problems == [
        "bad.py imports hybridops.months",
        "bad.py imports hybridops.files",
        "bad.py imports ..",
    ]


def test_the_check_finds_an_undeclared_import(tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text("import json\nimport numpy\nfrom google.protobuf import message\n")
    problems = undeclared([tmp_path], {"pandas"})
    assert [p.split(" imports ")[1].split(" ")[0] for p in problems] == ["google.protobuf", "numpy"]
    assert "protobuf" in problems[0]
    assert undeclared([tmp_path], {"numpy", "protobuf"}) == []


@pytest.mark.parametrize("group", ["runtime", "dev"])
def test_every_range_is_bounded_above(group: str) -> None:
    for name, req in requirements(group).items():
        operators = {spec.operator for spec in req.specifier}
        assert operators & {"==", "===", "<", "<=", "~="}, f"{name}: {req.specifier or 'no range'}"


def test_packages_whose_internals_we_touch_and_the_dev_tools_are_pinned_exactly() -> None:
    pinned = {**requirements("runtime"), **requirements("dev")}
    for name in EXACT | EXACT_DEV:
        specs = list(pinned[name].specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (name, specs)


@pytest.mark.parametrize(("lock", "groups"), [(LOCK, ["runtime"]), (DEV_LOCK, ["runtime", "dev"])])
def test_the_lock_holds_every_declared_package_at_an_admitted_version(lock: Path, groups: list[str]) -> None:
    versions = lock_versions(lock)
    for group in groups:
        for name, req in requirements(group).items():
            assert name in versions, f"{name} is missing from {lock.name}: run `make lock`"
            assert req.specifier.contains(versions[name], prereleases=True), (
                f"{lock.name} holds {name}=={versions[name]}, outside {req.specifier}: run `make lock`"
            )
    assert "--hash=sha256:" in lock.read_text()


def test_the_dev_lock_agrees_with_the_runtime_lock() -> None:
    runtime, dev = lock_versions(LOCK), lock_versions(DEV_LOCK)
    assert {
        name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version
    } == {}


def test_this_environment_is_the_locked_one() -> None:
    wrong = {}
    for name, version in lock_versions(DEV_LOCK).items():
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert wrong == {}, (
        f"(locked, installed) differ: run `make setup` (or `make lock` after a deliberate change): {wrong}"
    )


def test_the_scanner_lock_holds_the_scanner() -> None:
    """.venv-scan (checkov) installs from its own lock, made from requirements-scan.txt."""
    lines = (REPO / "requirements-scan.txt").read_text().splitlines()
    wanted = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    versions = lock_versions(REPO / "requirements" / "scan-lock.txt")
    assert wanted
    for req in wanted:
        assert req.specifier.contains(versions.get(canonical(req.name), "0"), prereleases=True), req
