"""The chart ships the platform's alert rules, dashboards and Alertmanager routing from ``infra/``.

Helm can only read files inside the chart, so ``infra/`` (the source) is copied into
``charts/hybridops/files/``; ``python -m hybridops.deploy.assets --check`` fails when the copies are stale
(a test runs the same check), ``python -m hybridops.deploy.assets`` refreshes them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CHART_FILES = ROOT / "charts" / "hybridops" / "files"
SOURCES = {
    "rules": (ROOT / "infra" / "prometheus" / "rules", "*.yaml"),
    "dashboards": (ROOT / "infra" / "grafana" / "dashboards", "*.json"),
    # The routing tree and inhibition rules of the bundled Alertmanager (receivers come from values).
    "alertmanager": (ROOT / "infra" / "alertmanager", "*.yml"),
}


def expected() -> dict[Path, bytes]:
    """Every file the chart should ship, with its content."""
    files: dict[Path, bytes] = {}
    for folder, (source, pattern) in SOURCES.items():
        for path in sorted(source.glob(pattern)):
            files[CHART_FILES / folder / path.name] = path.read_bytes()
    return files


def stale() -> list[Path]:
    """Chart copies that differ from ``infra/``, are missing, or have no source any more."""
    want = expected()
    present = {p for folder in SOURCES for p in (CHART_FILES / folder).glob("*") if p.is_file()}
    changed = [p for p, content in want.items() if not p.exists() or p.read_bytes() != content]
    return sorted(changed + [p for p in present if p not in want])


def sync() -> list[Path]:
    want = expected()
    for folder in SOURCES:
        for path in (CHART_FILES / folder).glob("*"):
            if path not in want:
                path.unlink()
    for path, content in want.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return sorted(want)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        outdated = stale()
        for path in outdated:
            print(f"stale: {path.relative_to(ROOT)} (run: python -m hybridops.deploy.assets)")
        return 1 if outdated else 0
    for path in sync():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
