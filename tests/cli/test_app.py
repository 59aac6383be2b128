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
        # A port past 65535 used to start a service that listened nowhere while saying where it listened.
        (["serve", "--port", "99999"], "Invalid value for '--port'"),
        (["serve", "--port", "0"], "Invalid value for '--port'"),
        (["exporter", "--port", "70000"], "Invalid value for '--port'"),
        (["monitor", "--prometheus-port", "65536"], "Invalid value for '--prometheus-port'"),
        (["ui", "--port", "-1"], "Invalid value for '--port'"),
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


def test_chart_render_writes_one_file_per_template(tmp_path):
    out = tmp_path / "rendered"
    result = _run("chart", "render", "--profile", "dataops", "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in out.iterdir())
    assert "statefulset-postgresql.yaml" in files and "deployment-dagster-daemon.yaml" in files
    assert not any("mlflow" in name for name in files)  # the DataOps profile leaves MLflow out
    assert f"{len(files)} manifests" in result.stdout


def test_chart_unknown_profile_is_one_line(tmp_path):
    result = _run("chart", "render", "--profile", "nope", "--out", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == "hybridops: unknown profile 'nope': choose one of dataops, hybrid, mlops"


def test_model_commands_without_a_registry_say_so(tmp_path):
    env = {**__import__("os").environ, "HYBRIDOPS_HOME": str(tmp_path)}
    result = _run("model", "rollback", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
