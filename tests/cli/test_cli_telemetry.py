"""Usage telemetry is off in the processes the CLI starts unless the user turns it on, and importing
hybridops changes no environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from hybridops.processes import stop
from hybridops.telemetry import TELEMETRY_OFF, TELEMETRY_SETTING_ENV, telemetry_env

EXE = str(Path(sys.executable).with_name("hybridops"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The test's environment without any telemetry switch or HYBRIDOPS_* of the session."""
    drop = {*TELEMETRY_OFF, TELEMETRY_SETTING_ENV}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("HYBRIDOPS_")}
    return {**env, "HYBRIDOPS_HOME": str(home), **extra}


def _started_environment(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Start ``hybridops ui --mlflow`` (which execs the MLflow server in its own process) and return the
    environment the MLflow server was started with, read from /proc."""
    command = [EXE, "ui", "--mlflow", "--host", "127.0.0.1", "--port", str(_free_port())]
    with (tmp_path / "ui.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "ui.log").read_text()
            cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
            if any(part.endswith(b"/mlflow") for part in cmdline):
                raw = Path(f"/proc/{process.pid}/environ").read_bytes()
                return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
            time.sleep(0.05)
        raise AssertionError("hybridops ui --mlflow did not start the MLflow server within 60 s")
    finally:
        stop(process)  # type: ignore[arg-type]


def test_the_mlflow_server_the_cli_starts_has_telemetry_off(tmp_path: Path) -> None:
    env = _started_environment(_env(tmp_path / "home"), tmp_path)
    for key, value in TELEMETRY_OFF.items():
        assert env.get(key) == value, key
    # The setting that turned it off is not passed on as if the user had set it.
    assert TELEMETRY_SETTING_ENV not in env


def test_the_setting_turns_telemetry_back_on(tmp_path: Path) -> None:
    env = _started_environment(_env(tmp_path / "home", HYBRIDOPS_TELEMETRY="true"), tmp_path)
    assert not set(TELEMETRY_OFF) & set(env), {k: env[k] for k in TELEMETRY_OFF if k in env}


def test_telemetry_env() -> None:
    assert telemetry_env(False) == {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    assert telemetry_env(True) == {}


def test_importing_hybridops_changes_no_environment() -> None:
    code = (
        "import os; before = dict(os.environ); "
        "import hybridops, hybridops.settings, hybridops.telemetry, hybridops.cli.app; "
        "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_dagster_instance_follows_the_setting(tmp_path: Path) -> None:
    import yaml

    from hybridops.orchestration.instance import prepare_dagster_home
    from hybridops.settings import Settings

    off = prepare_dagster_home(Settings(home=tmp_path / "off")) / "dagster.yaml"
    assert yaml.safe_load(off.read_text())["telemetry"] == {"enabled": False}
    on = prepare_dagster_home(Settings(home=tmp_path / "on", telemetry=True)) / "dagster.yaml"
    assert yaml.safe_load(on.read_text())["telemetry"] == {"enabled": True}
