"""The CLI answers fast and turns usage errors into one line on stderr, never a traceback."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("hybridops"))


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60, env=env)


def test_help_is_fast_and_imports_nothing_heavy():
    started = time.perf_counter()
    result = _run("--help")
    assert result.returncode == 0
    assert "run" in result.stdout and "ui" in result.stdout
    # A generous bound: importing Dagster alone takes seconds, so this fails if --help pulls it in.
    assert time.perf_counter() - started < 2.0
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hybridops.cli.app; "
            "print(sorted(m for m in ('dagster','feast','mlflow','pandas','duckdb') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--months", "2013-13"], "--months: '2013-13' is not a month"),
        (["run", "--months", "2013-05:2013-02"], "ends before it starts"),
        (["run", "--months", "2014-01"], "outside the available partitions"),
        (["run", "--bogus"], "No such option: --bogus"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_line_without_traceback(args, expected):
    result = _run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert lines[0].startswith("hybridops: error:")
