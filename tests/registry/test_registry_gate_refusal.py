"""Scenario 13: a candidate below the gate is refused, every alias stays where it was, and the refusal is
visible: tags on the version, the exporter's metrics, and the HybridopsCandidateRefused alert fired by a
real Prometheus scraping a real ``hybridops exporter`` process with the project's rule file."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import requests
from registry_support import Trained

import hybridops.registry as reg
from hybridops.observability.exporter import HybridopsCollector
from hybridops.registry.client import registry_client
from hybridops.settings import MonitoringSettings, Settings

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "infra" / "prometheus" / "rules" / "hybridops.yaml"


def _register(settings: Settings, trained: Trained) -> str:
    logged = trained.logged
    return reg.register_candidate(settings, logged.model_uri, logged.run_id, logged.sha256)


def _samples(settings: Settings) -> dict[str, list[tuple[dict[str, str], float]]]:
    collector = HybridopsCollector(
        settings.model_copy(update={"monitoring": MonitoringSettings(exporter_sources=["mlflow"])})
    )
    try:
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in collector.collect():
            for sample in family.samples:
                found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return found
    finally:
        collector.close()


def _observability_support() -> ModuleType:
    """tests/observability/observability_support.py (a real Prometheus), also when that folder's tests
    were not collected and so is not on sys.path."""
    name = "observability_support"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "observability" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_candidate_below_the_gate_is_refused_visibly(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained], tmp_path: Path
) -> None:
    settings = make_settings()
    name = settings.mlflow.model_name
    champion = _register(settings, boosters["good"])
    reg.promote(settings, champion, "first release")
    poor = _register(settings, boosters["poor"])
    client = registry_client(settings)

    def aliases() -> dict[str, str]:
        return {alias: str(v) for alias, v in client.get_registered_model(name).aliases.items()}

    aliases_before = aliases()
    events_before = len(reg.alias_history(settings))

    decision = reg.apply_gate(settings, poor, boosters["poor"].metrics, boosters["good"].metrics)
    assert not decision.promote and decision.reason.startswith("Refuse")
    # Refused: every alias unchanged (the candidate stays challenger), nothing added to the history.
    assert aliases() == aliases_before == {
        "champion": champion, "challenger": poor
    }  # fmt: skip
    assert len(reg.alias_history(settings)) == events_before
    assert reg.load_model(settings, name).info.version == champion
    tags = client.get_model_version(name, poor).tags
    assert tags["hybridops.gate_promote"] == "false" and tags["hybridops.gate_decision"] == decision.reason

    samples = _samples(settings)
    assert samples["hybridops_model_gate_refusals_total"] == [({"model": name}, 1.0)]
    assert samples["hybridops_model_gate_last_promoted"] == [({"model": name, "version": poor}, 0.0)]

    # The alert, end to end: the exporter process, a real Prometheus evaluating the project's rules.
    support = _observability_support()
    run_prometheus, wait_for = support.run_prometheus, support.wait_for
    port = _free_port()
    env = {
        **os.environ,
        "HYBRIDOPS_HOME": str(settings.home),
        "HYBRIDOPS_MLFLOW__MODEL_NAME": name,
        "HYBRIDOPS_MONITORING__EXPORTER_SOURCES": '["mlflow"]',
    }
    exe = str(Path(sys.executable).with_name("hybridops"))
    with (tmp_path / "exporter.log").open("wb") as log:
        exporter = subprocess.Popen(
            [exe, "exporter", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    try:
        wait_for(
            lambda: (
                "hybridops_model_gate_last_promoted"
                in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            ),
            120,
            "the exporter's gate metrics",
        )
        started = time.monotonic()
        with run_prometheus(tmp_path / "prometheus", {"hybridops": f"127.0.0.1:{port}"}, [RULES]) as prom:
            firing = wait_for(
                lambda: prom.values('ALERTS{alertname="HybridopsCandidateRefused",alertstate="firing"}'),
                60,
                "HybridopsCandidateRefused firing",
            )
            fired = time.monotonic() - started
        assert firing[0]["metric"]["version"] == poor and firing[0]["metric"]["model"] == name
    finally:
        exporter.terminate()
        exporter.wait(timeout=20)

    # A candidate that passes clears the refusal; the count of refusals stays.
    better = _register(settings, boosters["good"])
    better_metrics = {**boosters["good"].metrics, "auc": boosters["good"].metrics["auc"] + 0.05}
    assert reg.apply_gate(settings, better, better_metrics, boosters["good"].metrics).promote
    samples = _samples(settings)
    assert samples["hybridops_model_gate_refusals_total"] == [({"model": name}, 1.0)]
    assert samples["hybridops_model_gate_last_promoted"] == [({"model": name, "version": better}, 1.0)]
    print(
        f"\nscenario 13: refused v{poor}, aliases unchanged; HybridopsCandidateRefused firing {fired:.1f} s after Prometheus started"
    )
