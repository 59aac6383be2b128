"""``hybridops monitor`` for real: the CLI starts the exporter and a real Prometheus with the platform's rules,
prints where to look, stops both on Ctrl-C or SIGTERM, and fails with one line when it cannot run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from observability_support import RULES_DIR, alert_rules, free_port, prometheus_binary, wait_for

from hybridops.processes import default_signals

EXE = str(Path(sys.executable).with_name("hybridops"))


@pytest.fixture
def needs_prometheus() -> None:
    """`hybridops monitor` starts the machine's Prometheus: skip (fail when strict) without it."""
    prometheus_binary()


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The test's environment without any HYBRIDOPS_* of the session, state under ``home``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYBRIDOPS_")}
    return {**env, "HYBRIDOPS_HOME": str(home), **extra}


@dataclass
class Running:
    process: subprocess.Popen[str]
    stdout: list[str] = field(default_factory=list)
    children: list[int] = field(default_factory=list)  # recorded once started, killed if left behind

    def printed(self, prefix: str) -> str:
        return next((line for line in self.stdout if line.startswith(prefix)), "")


@contextmanager
def monitor_process(args: list[str], env: dict[str, str], stderr: Path) -> Iterator[Running]:
    """``hybridops monitor`` as a subprocess; its stdout lines are collected as they are printed."""
    with stderr.open("w") as sink:
        # Started as from a shell: the test runner's own signal state is not the command's.
        process = subprocess.Popen(
            [EXE, "monitor", *args],
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            env=env,
            preexec_fn=default_signals,
        )
    running = Running(process)
    assert process.stdout is not None
    stream = process.stdout
    reader = threading.Thread(target=lambda: running.stdout.extend(line.rstrip("\n") for line in stream))
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        reader.join(10)
        stream.close()
        for pid in running.children:  # a failed test must not leave a Prometheus running
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def metrics_endpoint(path: str) -> Iterator[str]:
    """A loopback ``/metrics`` under ``path`` only (404 elsewhere), standing in for the inference service:
    what is under test is that ``monitor`` scrapes the service's URL, prefix included."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == f"{path}/metrics"
            body = b"hybridops_serving_stand_in 1\n" if found else b"not found\n"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _port_free(port: int) -> bool:
    """Nothing listens on ``port`` (SO_REUSEADDR, as servers bind: closed connections may linger)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _started(running: Running, stderr: Path) -> None:
    wait_for(
        lambda: running.printed("log") or running.process.poll() is not None,
        60,
        "monitor to print where to look",
    )
    assert running.process.poll() is None, stderr.read_text()
    running.children = _children(running.process.pid)


def _stop_and_check(running: Running, stop: signal.Signals, ports: list[int], stderr: Path) -> None:
    """Send ``stop``; monitor must exit 0 leaving no Prometheus behind, both ports released, no traceback."""
    [child] = running.children
    assert "prometheus" in Path(f"/proc/{child}/cmdline").read_text()
    running.process.send_signal(stop)
    assert running.process.wait(30) == 0, stderr.read_text()
    wait_for(lambda: not _alive(child), 10, "prometheus to exit")
    assert all(_port_free(port) for port in ports)
    assert "Traceback" not in stderr.read_text()


@pytest.mark.usefixtures("needs_prometheus")
def test_monitor_runs_prometheus_with_the_rules_and_both_targets(tmp_path: Path) -> None:
    exporter_port, prometheus_port = free_port(), free_port()
    home, stderr = tmp_path / "home", tmp_path / "stderr"
    # A setting read from the environment reaches Prometheus through the exporter monitor starts.
    env = _env(home, HYBRIDOPS_MONITORING__FRESHNESS_MAX_AGE_HOURS="2")
    with metrics_endpoint("/svc") as service:
        args = [
            f"--exporter-port={exporter_port}",
            f"--prometheus-port={prometheus_port}",
            f"--inference-url={service}",
            "--interval=1s",
        ]
        with monitor_process(args, env, stderr) as running:
            _started(running, stderr)
            prometheus = f"http://127.0.0.1:{prometheus_port}"

            # What it prints: where to look.
            assert running.printed("exporter") == f"exporter    http://127.0.0.1:{exporter_port}/metrics"
            assert running.printed("prometheus").startswith(f"prometheus  {prometheus}  (alerts: /alerts")
            assert running.printed("rules") == f"rules       {RULES_DIR / 'hybridops.yaml'}"
            assert running.printed("scraping") == f"scraping    the inference service at {service}/metrics"
            log = home.resolve() / "prometheus" / "prometheus.log"
            assert running.printed("log") == f"log         {log}   (Ctrl-C stops both)"
            assert log.exists()

            # The Prometheus it started has every rule of the platform, evaluated without errors...
            def rules() -> list[dict[str, Any]]:
                groups = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
                return [rule for group in groups for rule in group["rules"]]

            assert sorted(r["name"] for r in rules()) == sorted(r["alert"] for r in alert_rules())
            wait_for(lambda: all(r["health"] == "ok" for r in rules()), 15, "every rule evaluated")

            # ... and scrapes the exporter and the inference service (its URL prefix kept).
            def targets() -> dict[str, tuple[str, str]]:
                active = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"][
                    "activeTargets"
                ]
                return {t["labels"]["job"]: (t["scrapeUrl"], t["health"]) for t in active}

            expected = {
                "hybridops-exporter": (f"http://127.0.0.1:{exporter_port}/metrics", "up"),
                "hybridops-serving": (f"{service}/metrics", "up"),
            }
            wait_for(lambda: targets() == expected, 30, f"targets {expected}")
            thresholds = wait_for(
                lambda: requests.get(
                    f"{prometheus}/api/v1/query",
                    params={"query": "hybridops_dagster_asset_freshness_threshold_seconds"},
                    timeout=5,
                ).json()["data"]["result"],
                15,
                "the exporter's freshness thresholds in Prometheus",
            )
            assert {float(t["value"][1]) for t in thresholds} == {7200.0}

            # Ctrl-C stops both.
            _stop_and_check(running, signal.SIGINT, [exporter_port, prometheus_port], stderr)
    assert running.stdout[-1] == "stopping prometheus and the exporter"


@pytest.mark.usefixtures("needs_prometheus")
def test_monitor_stops_prometheus_on_sigterm(tmp_path: Path) -> None:
    # Without its own handler, SIGTERM would end monitor at once and leave Prometheus running.
    ports = [free_port(), free_port()]
    stderr = tmp_path / "stderr"
    args = [f"--exporter-port={ports[0]}", f"--prometheus-port={ports[1]}", "--inference-url="]
    with monitor_process(args, _env(tmp_path / "home"), stderr) as running:
        _started(running, stderr)
        assert not running.printed("scraping")  # empty --inference-url: no service to scrape
        _stop_and_check(running, signal.SIGTERM, ports, stderr)


def _one_line_error(args: list[str], env: dict[str, str]) -> tuple[int, str, list[str]]:
    """Exit code, error line and other stderr lines of a failing ``hybridops monitor``: no traceback, and
    nothing else on stderr but the exporter's warnings about stores it cannot read (the home is empty)."""
    result = subprocess.run([EXE, "monitor", *args], capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    *warnings, error = result.stderr.strip().splitlines()
    assert all(line.startswith("cannot read ") for line in warnings), result.stderr
    assert not result.stdout, result.stdout
    return result.returncode, error, warnings


def test_monitor_without_prometheus_says_how_to_install_it(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    code, line, others = _one_line_error([], _env(tmp_path / "home", PATH=str(empty)))
    assert code == 1 and not others
    assert line == (
        "hybridops: prometheus is not installed: apt-get install prometheus (Debian) or put the binary on PATH."
    )
    assert not (tmp_path / "home").exists()  # nothing started, nothing written


@pytest.mark.usefixtures("needs_prometheus")
def test_monitor_rejects_an_inference_url_that_is_not_one(tmp_path: Path) -> None:
    code, line, others = _one_line_error(["--inference-url=127.0.0.1:8000"], _env(tmp_path / "home"))
    assert code == 2 and not others
    assert line.startswith("hybridops: error: --inference-url '127.0.0.1:8000' is not an http(s)://host:port")


@pytest.mark.usefixtures("needs_prometheus")
@pytest.mark.parametrize("taken", ["exporter", "prometheus"])
def test_monitor_on_a_taken_port_fails_in_one_line_and_leaves_nothing_running(
    tmp_path: Path, taken: str
) -> None:
    ports = {"exporter": free_port(), "prometheus": free_port()}
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports[taken]))
        blocker.listen()
        args = [
            f"--exporter-port={ports['exporter']}",
            f"--prometheus-port={ports['prometheus']}",
            "--inference-url=",
        ]
        code, line, _ = _one_line_error(args, _env(tmp_path / "home"))
    assert code == 1
    if taken == "exporter":
        assert line.startswith(f"hybridops: cannot serve the exporter on 127.0.0.1:{ports['exporter']}: ")
        assert "--exporter-port" in line
    else:
        assert line.startswith("hybridops: prometheus exited with code ")
        assert "address already in use" in line
        assert str(tmp_path / "home") in line  # the log's path
    assert _port_free(ports["exporter"]) and _port_free(ports["prometheus"])
