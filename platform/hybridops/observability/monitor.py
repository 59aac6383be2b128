"""``monitor``: a real local Prometheus with the platform's rules, scraping the exporter and the service."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

import yaml

from hybridops import bundled
from hybridops.errors import HybridopsError, UsageError
from hybridops.observability.exporter import start_exporter, stop_exporter
from hybridops.processes import stop
from hybridops.settings import Settings

INFRA_DIR = bundled.infra_dir()
RULES_DIR = INFRA_DIR / "prometheus" / "rules"
DASHBOARDS_DIR = INFRA_DIR / "grafana" / "dashboards"
EXPORTER_JOB = "hybridops-exporter"
SERVING_JOB = "hybridops-serving"


def _serving_job(inference_url: str) -> dict[str, object]:
    """The scrape job of the inference service at ``inference_url`` (its ``/metrics`` under that URL).

    Raises:
        UsageError: the URL is not ``http(s)://host[:port][/prefix]``.
    """
    parsed = urlparse(inference_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(
            f"--inference-url {inference_url!r} is not an http(s)://host:port URL (empty: scrape no service)"
        )
    job: dict[str, object] = {
        "job_name": SERVING_JOB,
        "scheme": parsed.scheme,
        "metrics_path": f"{parsed.path.rstrip('/')}/metrics",
        "static_configs": [{"targets": [parsed.netloc.rpartition("@")[2]]}],
    }
    return job


def prometheus_config(
    exporter_target: str, inference_url: str | None, rule_files: list[Path], interval: str = "15s"
) -> dict[str, object]:
    """The ``prometheus.yml`` of local mode (scrape jobs ``hybridops-exporter`` and ``hybridops-serving``).

    Raises:
        UsageError: ``inference_url`` is not an http(s) URL.
    """
    jobs: list[dict[str, object]] = [
        {"job_name": EXPORTER_JOB, "static_configs": [{"targets": [exporter_target]}]}
    ]
    if inference_url:
        jobs.append(_serving_job(inference_url))
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": jobs,
    }


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """Make SIGTERM stop like Ctrl-C, so a ``kill`` (or a supervisor) never leaves Prometheus orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _last_error(log: Path) -> str:
    """The line of Prometheus' log that says why it stopped (its last error, else its last line)."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "level=error" in line]
    line = (errors or lines or ["(empty log)"])[-1]
    _, found, err = line.partition(' err="')
    return err.rstrip('"') if found else line


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    """Poll Prometheus' ``/-/ready`` until it answers 200.

    Raises:
        HybridopsError: Prometheus exited (its error is in the message) or was not ready in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HybridopsError(
                f"prometheus exited with code {process.returncode} on start: {_last_error(log)} (log: {log})"
            )
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not listening yet, or listening but still loading (503)
        time.sleep(0.2)
    raise HybridopsError(f"prometheus was not ready after {timeout:.0f}s (log: {log})")


def monitor(
    settings: Settings,
    exporter_port: int = 9464,
    inference_url: str | None = "http://127.0.0.1:8000",
    prometheus_port: int = 9090,
    host: str = "127.0.0.1",
    interval: str = "15s",
    ready_timeout: float = 60.0,
) -> None:
    """Serve the exporter and run Prometheus (state under ``<home>/prometheus``) until interrupted.

    Ctrl-C or SIGTERM stops both; Prometheus exiting on its own is an error.

    Args:
        settings: the platform's settings (the exporter reads the stores under ``settings.home``).
        exporter_port: port of the exporter's ``/metrics``.
        inference_url: base URL of the inference service to scrape (its ``/metrics``); None for none.
        prometheus_port: port of Prometheus' UI and API.
        host: interface both listen on.
        interval: scrape and rule evaluation interval (a Prometheus duration).
        ready_timeout: seconds to wait for Prometheus to load its rules and answer.

    Raises:
        HybridopsError: the ``prometheus`` binary is not installed, a port is taken, or Prometheus
            stopped (the message has its error and the log's path).
        UsageError: ``inference_url`` is not an http(s) URL.
    """
    binary = shutil.which("prometheus")
    if binary is None:
        raise HybridopsError(
            "prometheus is not installed: apt-get install prometheus (Debian) or put the binary on PATH."
        )
    rule_files = sorted(RULES_DIR.glob("*.yaml"))
    config = prometheus_config(f"{host}:{exporter_port}", inference_url, rule_files, interval)
    workdir = settings.home_dir / "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    log = workdir / "prometheus.log"
    # Probe on loopback when listening on every interface.
    local = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with _sigterm_stops():
        try:
            server, _, collector = start_exporter(settings, host, exporter_port)
        except OSError as exc:
            raise HybridopsError(
                f"cannot serve the exporter on {host}:{exporter_port}: {exc.strerror or exc}; is "
                "`hybridops exporter` or another `hybridops monitor` running? Stop it or pass --exporter-port."
            ) from exc
        try:
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={workdir / 'prometheus.yml'}",
                        f"--storage.tsdb.path={workdir / 'data'}",
                        f"--web.listen-address={host}:{prometheus_port}",
                    ],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            try:
                _wait_ready(process, f"http://{local}:{prometheus_port}", log, ready_timeout)
                _print_where_to_look(host, exporter_port, prometheus_port, rule_files, inference_url, log)
                while process.poll() is None:
                    time.sleep(0.5)
                raise HybridopsError(
                    f"prometheus exited with code {process.returncode}: {_last_error(log)} (log: {log})"
                )
            except KeyboardInterrupt:
                print("stopping prometheus and the exporter", flush=True)
            finally:
                stop(process)
        finally:
            stop_exporter(server, collector)


def _print_where_to_look(
    host: str,
    exporter_port: int,
    prometheus_port: int,
    rule_files: list[Path],
    inference_url: str | None,
    log: Path,
) -> None:
    # Flushed line by line: the output is often piped (tee, a supervisor, a test).
    lines = [
        f"exporter    http://{host}:{exporter_port}/metrics",
        f"prometheus  http://{host}:{prometheus_port}  (alerts: /alerts, rules: /rules, targets: /targets)",
        f"rules       {', '.join(map(str, rule_files)) or 'none found (infra/ is not installed)'}",
    ]
    if inference_url:
        lines.append(f"scraping    the inference service at {inference_url.rstrip('/')}/metrics")
    if DASHBOARDS_DIR.is_dir():
        lines.append(
            f"dashboards  {DASHBOARDS_DIR} (import into Grafana with this Prometheus as data source)"
        )
    lines.append(f"log         {log}   (Ctrl-C stops both)")
    for line in lines:
        print(line, flush=True)
