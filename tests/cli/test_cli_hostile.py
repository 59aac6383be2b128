"""Hostile or careless use of the command line: every failure is lines naming what to fix, never a traceback.

Through :func:`hybridops.cli.app.main` (the entry point, with its one error path) in this process, and one
subprocess for what a user's terminal shows. Before these fixes a bad setting, a busy port, a file where a
folder belongs and a Ctrl-C each ended in a traceback, a wall of logs, a silent exit or a minutes-long wait.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridops.cli.app import main

EXE = str(Path(sys.executable).with_name("hybridops"))


@pytest.fixture(autouse=True)
def _environment(tmp_path: Path) -> Iterator[None]:
    """The entry point sets variables for itself and its children (telemetry, MLflow's log level)."""
    saved = dict(os.environ)
    os.environ["HYBRIDOPS_HOME"] = str(tmp_path / "home")
    yield
    os.environ.clear()
    os.environ.update(saved)


def _main(capsys: pytest.CaptureFixture[str], *args: str, **env: str) -> tuple[int, list[str]]:
    os.environ.update(env)
    sys.argv = ["hybridops", *args]
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return int(exited.value.code or 0), err.strip().splitlines()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as held:  # bound, never listening: a connection is refused at once
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_bad_settings_name_each_variable_and_exit_2(capsys):
    code, lines = _main(
        capsys, "quarantine", HYBRIDOPS_SPC__SIGMA="inf", HYBRIDOPS_SERVING__PORT="8000", HYBRIDOPS_HOME=""
    )
    assert code == 2
    assert lines[0] == "hybridops: error: the settings do not load (3 problems):"
    assert any("HYBRIDOPS_SPC__SIGMA='inf'" in line for line in lines)
    assert any("HYBRIDOPS_SERVING__PORT is not a setting of serving" in line for line in lines)
    assert any("setting home (HYBRIDOPS_HOME='')" in line for line in lines)


def test_a_list_setting_that_is_not_json_is_named(capsys):
    code, lines = _main(capsys, "quarantine", HYBRIDOPS_MONITORING__EXPORTER_SOURCES="dagster,feast")
    assert code == 2
    assert "cannot parse HYBRIDOPS_MONITORING__EXPORTER_SOURCES='dagster,feast'" in lines[1]


@pytest.mark.parametrize(
    "args",
    [
        ["exporter", "--port", "{port}"],
        ["ui", "--port", "{port}"],
        ["ui", "--mlflow", "--port", "{port}"],
    ],
)
def test_a_busy_port_is_named_before_anything_starts(capsys, busy_port, args):
    code, lines = _main(capsys, *(arg.format(port=busy_port) for arg in args))
    assert code == 2
    assert lines == [
        f"hybridops: error: --port {busy_port}: another process already listens on 127.0.0.1:{busy_port}; "
        "stop it, or choose another port with --port"
    ]


def test_a_tracking_server_that_is_down_is_named_at_once(capsys, closed_port, tmp_path):
    url = f"http://127.0.0.1:{closed_port}"
    code, lines = _main(capsys, "model", "list", HYBRIDOPS_MLFLOW__TRACKING_URI=url)
    assert code == 1
    assert lines == [
        f"hybridops: the MLflow tracking server {url} (HYBRIDOPS_MLFLOW__TRACKING_URI) does not answer "
        "(Connection refused): start it (hybridops ui --mlflow serves the local store), or unset "
        f"HYBRIDOPS_MLFLOW__TRACKING_URI to use the store under {tmp_path / 'home'}"
    ]


def test_a_file_where_a_folder_belongs_is_one_line_naming_it(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, lines = _main(capsys, "chart", "render", "--profile", "dataops", "--out", str(blocker / "out"))
    assert code == 1
    assert lines == [
        f"hybridops: {blocker / 'out'}: Not a directory: a file stands where a folder is needed: move it, or "
        "give another path"
    ]


def test_an_unexpected_error_is_one_line_with_its_traceback_in_a_file(capsys, tmp_path):
    from hybridops.cli.errors import report

    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError as exc:
        assert report(exc) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("hybridops: unexpected error, a defect of hybridops: ZeroDivisionError: boom; ")
    written = Path(line.rsplit("traceback in ", 1)[1])
    assert "ZeroDivisionError: boom" in written.read_text()
    written.unlink()


def test_the_terminal_sees_no_traceback_for_a_bad_setting(tmp_path):
    env = {**os.environ, "HYBRIDOPS_HOME": str(tmp_path), "HYBRIDOPS_SERVING__ALLOWED_HOSTS": "[garbage"}
    result = subprocess.run([EXE, "quarantine"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2
    assert "HYBRIDOPS_SERVING__ALLOWED_HOSTS='[garbage'" in result.stderr


def test_a_month_that_cannot_exist_is_refused_not_filtered_to_nothing(capsys):
    code, lines = _main(capsys, "quarantine", "--month", "2013-13")
    assert code == 2
    assert lines == ["hybridops: error: --month: '2013-13' is not a month; write YYYY-MM, e.g. 2013-01"]


def test_a_misspelt_variable_is_warned_about_and_the_command_runs(capsys):
    code, lines = _main(capsys, "quarantine", "--month", "2013-13", HYBRIDOPS_SEVRING__MAX_FLIGHTS="10")
    assert code == 2  # the command itself still ran (and refused its own bad month)
    assert lines[0].startswith(
        "hybridops: warning: HYBRIDOPS_SEVRING__MAX_FLIGHTS is not a setting of hybridops, ignored "
        "(did you mean HYBRIDOPS_SERVING__MAX_FLIGHTS?)"
    )
    assert lines[1].startswith("hybridops: error: --month")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("folder", "is a folder; name a file, e.g. {path}/summary.json"),
        ("in-a-file", "{blocker} is a file, not a folder; name another path"),
        ("under-a-file", "cannot create its folder (Not a directory); name another path"),
    ],
)
def test_a_summary_path_that_cannot_be_written_is_refused_before_the_run(capsys, tmp_path, where, message):
    """It failed only after the whole run, when the summary was written."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = {
        "folder": tmp_path,
        "in-a-file": blocker / "summary.json",
        "under-a-file": blocker / "sub" / "summary.json",
    }[where]
    code, lines = _main(capsys, "run", "--months", "2013-01", "--json", str(path))
    assert code == 2
    assert lines == [f"hybridops: error: --json {path}: " + message.format(path=path, blocker=blocker)]
    assert not (tmp_path / "home" / "dagster").exists()  # nothing ran
