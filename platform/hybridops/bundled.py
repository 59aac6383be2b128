"""Where the Helm chart and ``infra/`` (alert rules, dashboards, Alertmanager routing) are.

In a source checkout they are the checkout's ``charts/hybridops`` and ``infra/``; an installed wheel
carries copies inside the package (``hybridops/_bundled/``, put there by ``setup.py`` at build time), so
``hybridops chart``, ``deploy`` and ``monitor`` work from a plain ``pip install`` too.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _bundled(*parts: str) -> Path:
    # A wheel installs as files on disk, so the package's resources are plain paths.
    return Path(str(resources.files("hybridops").joinpath("_bundled", *parts)))


def chart_dir() -> Path:
    """``charts/hybridops`` of the checkout, else the chart inside the installed package."""
    source = SOURCE_ROOT / "charts" / "hybridops"
    return source if (source / "Chart.yaml").is_file() else _bundled("charts", "hybridops")


def infra_dir() -> Path:
    """``infra/`` of the checkout, else the copy inside the installed package."""
    source = SOURCE_ROOT / "infra"
    return source if (source / "prometheus" / "rules").is_dir() else _bundled("infra")
