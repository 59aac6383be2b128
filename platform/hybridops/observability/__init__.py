"""Observability of the whole platform: a pull-based Prometheus exporter and a local monitoring stack.

* :mod:`hybridops.observability.exporter`: ``HybridopsCollector`` reads the Dagster instance, the DuckDB
  warehouse, the Feast registry and the MLflow registry at scrape time; ``serve_exporter`` serves it.
* :mod:`hybridops.observability.multiprocess_metrics`: serves the metric files MLflow's workers write
  (prometheus_client multiprocess mode) without a login: the MLflow pod's ``metrics`` sidecar.
* :mod:`hybridops.observability.monitor`: ``monitor`` starts a real Prometheus with the platform's rules.

The metric names are listed in ``docs/observability.md``; the alerts live in ``infra/prometheus/rules``.
"""

from __future__ import annotations

from hybridops.observability.exporter import HybridopsCollector, exporter_registry, serve_exporter

__all__ = ["HybridopsCollector", "exporter_registry", "serve_exporter"]
