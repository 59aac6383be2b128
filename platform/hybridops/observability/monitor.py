"""``monitor``: a real local Prometheus with the platform's rules, scraping the exporter and the service."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import yaml

from hybridops.errors import HybridopsError
from hybridops.observability.exporter import start_exporter
from hybridops.settings import Settings

RULES_DIR = Path(__file__).resolve().parents[3] / "infra" / "prometheus" / "rules"


def prometheus_config(
    exporter_target: str, inference_target: str | None, rule_files: list[Path], interval: str = "15s"
) -> dict[str, object]:
    """The ``prometheus.yml`` of local mode (scrape jobs ``hybridops-exporter`` and ``hybridops-serving``)."""
    jobs = [{"job_name": "hybridops-exporter", "static_configs": [{"targets": [exporter_target]}]}]
    if inference_target:
        jobs.append({"job_name": "hybridops-serving", "static_configs": [{"targets": [inference_target]}]})
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": jobs,
    }


def monitor(
    settings: Settings,
    exporter_port: int = 9464,
    inference_url: str | None = "http://127.0.0.1:8000",
    prometheus_port: int = 9090,
    host: str = "127.0.0.1",
) -> None:
    """Serve the exporter and run Prometheus (state under ``<home>/prometheus``) until interrupted.

    Raises:
        HybridopsError: the ``prometheus`` binary is not installed.
    """
    binary = shutil.which("prometheus")
    if binary is None:
        raise HybridopsError(
            "prometheus is not installed: apt-get install prometheus (Debian) or put the binary on PATH."
        )
    rule_files = sorted(RULES_DIR.glob("*.yaml"))
    workdir = settings.home_dir / "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    inference_target = urlparse(inference_url).netloc if inference_url else None
    config = prometheus_config(f"{host}:{exporter_port}", inference_target, rule_files)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    server, _, collector = start_exporter(settings, host, exporter_port)
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={host}:{prometheus_port}",
        ],
        stdout=(workdir / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    print(f"exporter    http://{host}:{exporter_port}/metrics")
    print(f"prometheus  http://{host}:{prometheus_port}  (alerts: /alerts, targets: /targets)")
    print(f"rules       {', '.join(map(str, rule_files)) or 'none found (infra/ is not installed)'}")
    if inference_target:
        print(f"scraping    the inference service at {inference_url}/metrics")
    print(f"log         {workdir / 'prometheus.log'}   (Ctrl-C stops both)")
    try:
        while process.poll() is None:
            time.sleep(0.5)
        raise HybridopsError(f"prometheus exited with {process.returncode}; see {workdir / 'prometheus.log'}")
    except KeyboardInterrupt:
        pass
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)
        server.shutdown()
        collector.close()
