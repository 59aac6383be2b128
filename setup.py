"""Build hook (the project's metadata is in pyproject.toml): the wheel carries the Helm chart and ``infra/``.

They live outside the ``hybridops`` package in the checkout, where setuptools' package data cannot reach,
so ``build_py`` copies them to ``hybridops/_bundled/`` (read through ``hybridops.bundled``). An editable
install reads the checkout instead and copies nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("charts/hybridops", "infra")


class BuildPyWithBundled(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder in BUNDLED:
            source = ROOT / folder
            if not (source.is_dir() and any(source.iterdir())):
                raise SystemExit(f"{source} is missing: the wheel must carry it (build from a full checkout)")
            target = Path(self.build_lib) / "hybridops" / "_bundled" / folder
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithBundled})
