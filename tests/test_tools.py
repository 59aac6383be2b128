"""Strict mode: a test needing a missing tool fails under HYBRIDOPS_STRICT_TOOLS=1, a skipped test fails the
session, and .ci/run installs and checks every tool the tests use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tools

TESTS = Path(__file__).resolve().parent
CI_RUN = TESTS.parent / ".ci" / "run"

SESSION = """
import pytest
from tools import require_tool


def test_passes():
    assert True


def test_needs_a_tool():
    require_tool("{tool}")


@pytest.mark.real_cluster
def test_on_a_real_cluster():
    raise AssertionError("deselected unless -m real_cluster")
"""


def _pytest(tmp_path: Path, strict: bool, tool: str, path: str) -> subprocess.CompletedProcess[str]:
    """A pytest session on a small test file with the suite's conftest as a plugin."""
    (tmp_path / "test_session.py").write_text(SESSION.format(tool=tool))
    env = {key: value for key, value in os.environ.items() if key != tools.STRICT_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["PATH"] = path
    if strict:
        env[tools.STRICT_ENV] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q", "-rs",
         "--rootdir", str(tmp_path), str(tmp_path / "test_session.py")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip


def test_a_missing_tool_skips_locally(tmp_path: Path) -> None:
    result = _pytest(tmp_path, strict=False, tool="amtool", path=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped, 1 deselected" in result.stdout
    assert "amtool missing: apt-get install prometheus-alertmanager" in result.stdout


def test_a_missing_tool_fails_under_strict_mode(tmp_path: Path) -> None:
    result = _pytest(tmp_path, strict=True, tool="amtool", path=str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed, 1 deselected" in result.stdout
    assert "amtool missing" in result.stdout and "HYBRIDOPS_STRICT_TOOLS=1" in result.stdout


def test_any_skip_fails_the_session_under_strict_mode(tmp_path: Path) -> None:
    (tmp_path / "test_other.py").write_text(
        "import pytest\n\ndef test_skips():\n    pytest.skip('no reason')\n"
    )
    env = {**os.environ, tools.STRICT_ENV: "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), str(tmp_path / "test_other.py")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 skipped under HYBRIDOPS_STRICT_TOOLS=1: the run fails" in result.stdout
    assert "test_other.py::test_skips: no reason" in result.stdout


def test_a_present_tool_runs_under_strict_mode(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "amtool"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    result = _pytest(tmp_path, strict=True, tool="amtool", path=str(tmp_path / "bin"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 1 deselected" in result.stdout


def test_require_tool_returns_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "prometheus-alertmanager"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tools.require_tool("alertmanager") == str(fake)


def test_ci_installs_and_checks_every_tool() -> None:
    """.ci/run asks tests/tools.py which packages are missing, installs them, then checks every tool."""
    script = CI_RUN.read_text()
    assert "export HYBRIDOPS_STRICT_TOOLS=1" in script
    assert "tests/tools.py --packages" in script and "tests/tools.py --check" in script
    assert script.index("tests/tools.py --check") < script.index("make test")
