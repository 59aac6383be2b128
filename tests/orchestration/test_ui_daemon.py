"""``hybridops ui`` brings the Dagster daemon, and the daemon's automation alone carries a new month.

One ``hybridops ui`` on a temp home and a free port, with a tiny source folder that starts empty: the
webserver answers and the daemon's heartbeats are on the instance; a month dropped into the folder is
carried by the source sensor and the automation conditions, with no run launched by hand, until its
``fct_flights`` partition is materialized; then SIGINT (Ctrl-C) stops the webserver, the daemon and
every process they started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code_location"))
from source_builders import write_months  # noqa: E402

HYBRIDOPS = str(Path(sys.executable).with_name("hybridops"))
START_TIMEOUT_S = 120
MONTH_TIMEOUT_S = 600
DAEMONS = {"SENSOR", "ASSET", "BACKFILL", "QUEUED_RUN_COORDINATOR"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc: parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@dataclass
class Ui:
    process: subprocess.Popen[bytes]
    base: str
    home: Path
    source: Path
    log: Path

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home / "dagster"))

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    root = tmp_path_factory.mktemp("ui-daemon")
    home, source = root / "home", root / "source"
    source.mkdir()
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env |= {
        "HYBRIDOPS_HOME": str(home),
        "HYBRIDOPS_SOURCE_DIR": str(source),
        "HYBRIDOPS_ORCHESTRATION__SENSOR_INTERVAL_SECONDS": "5",
        # Steps in the run's process: no per-step start-up of the code location on a shared 2-core box.
        "HYBRIDOPS_ORCHESTRATION__EXECUTOR": "in_process",
    }
    log = root / "hybridops-ui.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [HYBRIDOPS, "ui", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = Ui(process, f"http://127.0.0.1:{port}", home, source, log)
    try:
        yield handle
    finally:
        if process.poll() is None:
            for pid in _descendants(process.pid):
                with __import__("contextlib").suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
            process.wait(10)


def _wait(what: str, ui: Ui, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ui.process.poll() is not None:
            pytest.fail(f"`hybridops ui` exited with {ui.process.returncode}:\n{ui.tail()}")
        if predicate():
            return
        time.sleep(1)
    pytest.fail(f"{what} not within {timeout} s:\n{ui.tail()}")


def _serving(ui: Ui) -> bool:
    try:
        with urllib.request.urlopen(f"{ui.base}/server_info", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def test_the_webserver_answers_and_the_daemon_beats(ui: Ui):
    _wait("the webserver", ui, lambda: _serving(ui), START_TIMEOUT_S)

    def beating() -> bool:
        with ui.instance() as instance:
            return set(instance.get_daemon_heartbeats()) >= DAEMONS

    _wait("the daemon's heartbeats", ui, beating, START_TIMEOUT_S)


@pytest.mark.slow  # the sensor, the daemon and a whole run by automation: minutes; the slow group CI runs
def test_a_dropped_month_reaches_the_warehouse_by_automation_alone(ui: Ui):
    _wait("the webserver", ui, lambda: _serving(ui), START_TIMEOUT_S)
    started = time.monotonic()
    # A whole month: a month of one day fails its blocking completeness checks (every day's flights, every
    # origin's hours) by design, and automation then rightly holds everything downstream.
    write_months(ui.source, [1], days=31)

    def loaded() -> bool:
        with ui.instance() as instance:
            return bool(
                instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey("fct_flights"), asset_partitions=["2013-01"]),
                    limit=1,
                ).records
            )

    _wait("fct_flights 2013-01", ui, loaded, MONTH_TIMEOUT_S)
    with ui.instance() as instance:
        runs = instance.get_runs()
        assert runs, "no run at all"
        # Every run was launched by the daemon (sensor or automation), none by hand.
        launched_by = {run.run_id: run.tags.get("dagster/sensor_name") for run in runs}
        assert set(launched_by.values()) <= {"source_arrivals", "hybridops_automation"}, launched_by
        assert "hybridops_automation" in launched_by.values()
        assert instance.get_dynamic_partitions("months") == ["2013-01"]
    print(f"month to fct_flights: {time.monotonic() - started:.0f} s")


def test_ctrl_c_stops_the_webserver_the_daemon_and_their_children(ui: Ui):
    _wait("the webserver", ui, lambda: _serving(ui), START_TIMEOUT_S)
    children = _descendants(ui.process.pid)
    assert len(children) >= 2, children  # webserver and daemon, and their code servers
    ui.process.send_signal(signal.SIGINT)
    assert ui.process.wait(60) == 0, ui.tail()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.5)
    assert not [pid for pid in children if _alive(pid)], ui.tail()
    assert not _serving(ui)
