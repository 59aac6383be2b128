"""A pull-based Prometheus exporter of the whole platform, evaluated at scrape time.

Dagster has no ``/metrics`` endpoint and push-based metrics never see runs that crash or sit queued, so
this collector reads the stores themselves each time Prometheus scrapes:

* ``dagster``: the instance under ``settings.dagster_home`` (runs by job and status, durations, active
  runs and their age, daemon heartbeats, per-asset last materialization, latest asset check results);
* ``warehouse``: the warehouse (either backend) opened read-only (quarantine, SPC points and violations, drift of
  the latest scored month, live model performance, alias events, the skew audit when present);
* ``feast``: the Feast registry (materialization intervals and last update of each feature view);
* ``mlflow``: the registry's champion (version and holdout metrics) and the promotion gate's decisions
  (refusals counted, the latest decision as 1 promoted / 0 refused).

``settings.monitoring.exporter_sources`` lists the sources to read (all four by default): a source left
out is never opened, exports nothing (no ``hybridops_exporter_source_up`` either) and logs nothing, so a
deployment without MLflow or Feast does not report them down. Each enabled source is read independently:
a missing or unreadable store sets ``hybridops_exporter_source_up{source=...}`` to 0 and the other sources
are still exported; a cached source that was read before keeps exporting its last values while it is
unreadable (a pipeline run holds the DuckDB warehouse for its whole duration), so its alerts do not flap
for a lock: ``source_up`` says the values are stale. Reads that change only when a batch runs (warehouse, MLflow, Feast) are cached for
``cache_seconds``: besides being cheaper, fewer read-only opens of the DuckDB file mean fewer collisions
with the pipeline's writer (DuckDB admits one writing process or many reading ones, never both). The
Dagster reads are incremental (runs updated and check evaluations stored since the previous scrape), so a
scrape stays well under a second on a long-lived instance.

The freshness thresholds of ``settings.monitoring`` are exported too
(``hybridops_dagster_asset_freshness_threshold_seconds{asset}``,
``hybridops_feast_freshness_threshold_seconds``), and so are the model alerts' (``hybridops_model_live_auc_max_drop``,
``hybridops_model_prediction_psi_threshold``, ``hybridops_model_drifted_importance_threshold``; each
feature's learnt PSI threshold comes with its PSI from the warehouse): the alerts compare against them, so
the thresholds are settings (and chart values), not numbers in the rule files. Each is exported only with
its source (dagster, feast, warehouse) enabled.

The collector never imports ``dagster_project``. Each source is read by its own module
(``exporter_dagster``, ``exporter_warehouse``, ``exporter_feast``, ``exporter_mlflow``); the threshold
gauges come from :mod:`hybridops.observability.thresholds`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hybridops.observability.exporter_dagster import DagsterReader
from hybridops.observability.exporter_feast import feast_metrics, feast_registry_path
from hybridops.observability.exporter_mlflow import mlflow_metrics
from hybridops.observability.exporter_values import PREFIX
from hybridops.observability.exporter_warehouse import warehouse_metrics
from hybridops.observability.thresholds import alert_thresholds, source_thresholds
from hybridops.settings import EXPORTER_SOURCES, ExporterSource, Settings

log = logging.getLogger(__name__)

SOURCES: tuple[ExporterSource, ...] = EXPORTER_SOURCES


class HybridopsCollector(Collector):
    """Reads the enabled stores at scrape time; one failing store never hides the others."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._dagster = DagsterReader(settings.dagster_home)
        self._feast_store: Any = None
        self._cache: dict[str, tuple[float, list[Metric]]] = {}
        self._errors: dict[str, str] = {}  # the last error of each unreadable source

    def close(self) -> None:
        self._dagster.dispose()

    def describe(self) -> Iterable[Metric]:
        return []  # collected at scrape time only (no store access on registration)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        now = self.clock()
        up = GaugeMetricFamily(
            f"{PREFIX}_exporter_source_up",
            "1 when the exporter could read the source at this scrape; only the sources enabled by "
            "monitoring.exporter_sources (dagster, warehouse, feast, mlflow) are reported.",
            labels=["source"],
        )
        duration = GaugeMetricFamily(
            f"{PREFIX}_exporter_source_read_duration_seconds",
            "Time spent reading each source at this scrape (0 when served from the cache).",
            labels=["source"],
        )
        readers: dict[ExporterSource, Callable[[], list[Metric]]] = {
            "dagster": lambda: list(self._dagster.collect(now)),
            "warehouse": lambda: list(warehouse_metrics(self.settings)),
            "feast": self._read_feast,
            "mlflow": lambda: mlflow_metrics(self.settings),
        }
        cached = {"warehouse", "feast", "mlflow"}
        # A disabled source is not opened, not reported (no source_up, no duration) and not logged.
        enabled = set(self.settings.monitoring.exporter_sources)
        for source in (s for s in SOURCES if s in enabled):
            read = readers[source]
            started = time.perf_counter()
            hit = self._cache.get(source)
            try:
                if source in cached and hit is not None and now - hit[0] < self.cache_seconds:
                    metrics = hit[1]
                else:
                    metrics = read()
                    if source in cached:
                        self._cache[source] = (now, metrics)
                ok = 1.0
                if self._errors.pop(source, None) is not None:
                    log.warning("%s is readable again", source)
            except Exception as exc:
                # One warning when a source becomes unreadable (or its error changes), not one per scrape:
                # a missing store would otherwise fill the log at every scrape interval.
                error = repr(exc)
                level = logging.DEBUG if self._errors.get(source) == error else logging.WARNING
                self._errors[source] = error
                log.log(level, "cannot read %s: %s", source, error, exc_info=log.isEnabledFor(logging.DEBUG))
                if source == "dagster":
                    self._dagster.dispose()
                if source == "feast":
                    self._feast_store = None
                # The last good read stays exported (its age grows; source_up = 0 marks it stale).
                metrics, ok = (hit[1] if hit is not None else []), 0.0
            up.add_metric([source], ok)
            duration.add_metric([source], time.perf_counter() - started)
            yield from metrics
        yield from source_thresholds(self.settings)
        yield from alert_thresholds(self.settings)
        yield up
        yield duration

    def _read_feast(self) -> list[Metric]:
        path = feast_registry_path(self.settings)
        if path is not None and not path.exists():
            raise FileNotFoundError(f"no Feast registry at {path}")
        if self._feast_store is None:
            from hybridops.features.store import feature_store

            self._feast_store = feature_store(self.settings)
        return feast_metrics(self.settings, self._feast_store)


def exporter_registry(settings: Settings, **options: Any) -> tuple[CollectorRegistry, HybridopsCollector]:
    """A registry holding only the platform collector (no process or Python metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = HybridopsCollector(settings, **options)
    registry.register(collector)
    return registry, collector


def start_exporter(
    settings: Settings, host: str = "127.0.0.1", port: int = 9464, **options: Any
) -> tuple[WSGIServer, threading.Thread, HybridopsCollector]:
    """Serve ``/metrics`` from a background thread; returns the server, its thread and the collector
    (:func:`stop_exporter` stops both). ``options`` go to :class:`HybridopsCollector`.

    Raises:
        OSError: the address cannot be bound (the port is taken).
    """
    registry, collector = exporter_registry(settings, **options)
    # Bind first: a taken port fails at once, not after the warm-up's seconds of imports and reads.
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        collector.collect()  # warm up: a scrape arriving meanwhile waits for it on the collector's lock
    except BaseException:
        stop_exporter(server, collector)
        raise
    return server, thread, collector


def stop_exporter(server: WSGIServer, collector: HybridopsCollector) -> None:
    """Stop serving, release the port (``shutdown`` alone keeps the socket open) and the stores."""
    server.shutdown()
    server.server_close()
    collector.close()


def serve_exporter(settings: Settings, host: str = "127.0.0.1", port: int = 9464) -> None:
    """Serve ``http://host:port/metrics`` until interrupted (``hybridops exporter``)."""
    server, thread, collector = start_exporter(settings, host, port)
    try:
        while thread.is_alive():
            thread.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        stop_exporter(server, collector)
