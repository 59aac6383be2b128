"""The exporter's ``mlflow`` source: the registry's champion and the promotion gate's decisions."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from hybridops.observability.exporter_values import PREFIX, finite
from hybridops.settings import Settings

GATE_PROMOTE_TAG = "hybridops.gate_promote"  # hybridops.registry.models.GATE_PROMOTE_TAG (not imported early)


def mlflow_metrics(settings: Settings) -> list[Metric]:
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise FileNotFoundError(f"no MLflow store at {uri}")
    # Imported once there is a store to read: importing MLflow takes seconds.
    from hybridops.registry.models import champion, gate_decisions

    info = InfoMetricFamily(
        f"{PREFIX}_model_champion",
        "The registry's champion model version.",
        labels=["model"],
    )
    version = GaugeMetricFamily(
        f"{PREFIX}_model_champion_version",
        "Version number of the registry's champion.",
        labels=["model"],
    )
    holdout = GaugeMetricFamily(
        f"{PREFIX}_model_champion_metric",
        "Metrics logged with the champion's training run (holdout evaluation).",
        labels=["model", "metric"],
    )
    refusals = CounterMetricFamily(
        f"{PREFIX}_model_gate_refusals",
        "Candidate versions the promotion gate refused (tag hybridops.gate_promote=false).",
        labels=["model"],
    )
    last = GaugeMetricFamily(
        f"{PREFIX}_model_gate_last_promoted",
        "The gate's latest decision: 1 when that candidate was promoted, 0 when it was refused (the reason "
        "is its tag hybridops.gate_decision).",
        labels=["model", "version"],
    )
    decisions = gate_decisions(settings)
    model_name = settings.mlflow.model_name
    refusals.add_metric([model_name], float(sum(d.tags.get(GATE_PROMOTE_TAG) == "false" for d in decisions)))
    if decisions:
        latest = decisions[-1]
        last.add_metric([model_name, latest.version], float(latest.tags.get(GATE_PROMOTE_TAG) == "true"))
    current = champion(settings)
    if current is not None:
        info.add_metric([current.name], {"version": current.version, "run_id": current.run_id or ""})
        if current.version.isdigit():
            version.add_metric([current.name], float(current.version))
        for name, value in sorted(current.metrics.items()):
            if finite(value):
                holdout.add_metric([current.name, name], float(value))
    return [info, version, holdout, refusals, last]
