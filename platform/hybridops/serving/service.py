"""The state of one prediction service: settings, metrics, model holder, feature reader, feature log.

The online store is not tried by ``/predict`` for ``serving.store_down_seconds`` after a failed read, so a
hung store costs one bounded wait per interval rather than one per request (and the event loop stays free
for ``/healthz``). Readiness does not depend on the store being reachable (see :meth:`Service.readiness`):
in an outage every replica stays in the Service and answers 503 + Retry-After or degraded defaults, as
``serving.on_store_error`` says, rather than all leaving it. A failed self-check (the reader disagrees with
Feast) is not an outage but a broken deployment, and does make the replica unready.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Sequence

import numpy as np

from hybridops.features.request import DEPARTED_AT, request_matrix, served_columns
from hybridops.features.store import feature_names, feature_store, load_definitions_module
from hybridops.serving.feature_log import FeatureLog
from hybridops.serving.features import FeatureBatch, OnlineFeatureReader, StoreUnavailableError
from hybridops.serving.metrics import ServingMetrics
from hybridops.serving.model_holder import ModelHolder
from hybridops.serving.schemas import Flight
from hybridops.serving.self_check import SelfCheckError, check_store
from hybridops.settings import Settings

log = logging.getLogger(__name__)
_READER_RETRY_SECONDS = 2.0


class Service:
    """The state of one app: settings, metrics, model holder, feature reader and feature log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ServingMetrics()
        # The served matrix: the online store's features (feature_names(), what the reader fills) then
        # the request features computed from the request itself; the model picks its own columns by name.
        self.store_names = feature_names()
        self.names = served_columns()
        self._departed = self.store_names.index(DEPARTED_AT)
        self.view_names = list(load_definitions_module().VIEW_FEATURES)
        self.holder = ModelHolder(settings, self.names, self.metrics)
        self.feature_log = FeatureLog(settings, self.names, self.view_names, self.metrics)
        self._reader: OnlineFeatureReader | None = None
        self._reader_error: str | None = None
        self._reader_tried = 0.0
        self._reader_lock = threading.Lock()
        self.store_down_until = 0.0  # monotonic time before which /predict does not try the store
        self.store_error: str | None = None  # why the last store read failed; None once one succeeds
        self.self_check_error: str | None = None
        self.draining = False  # set on SIGTERM (hybridops.serving.server): /readyz answers 503

    def reader(self) -> OnlineFeatureReader:
        """The feature reader, built on first use and rebuilt (at most every 2 s) after a failure."""
        if self._reader is not None:
            return self._reader
        with self._reader_lock:
            if self._reader is None:
                if time.monotonic() - self._reader_tried < _READER_RETRY_SECONDS and self._reader_error:
                    raise StoreUnavailableError(self._reader_error)
                self._reader_tried = time.monotonic()
                try:
                    store = feature_store(self.settings)
                    reader = OnlineFeatureReader(self.settings, store)
                except Exception as exc:
                    self._reader_error = f"feature store unavailable: {exc}"
                    raise StoreUnavailableError(self._reader_error) from exc
                try:
                    # The reader reads Feast's private layout: it must give what Feast gives (see
                    # hybridops.serving.self_check) before any request or readiness relies on it.
                    check_store(reader, store)
                except SelfCheckError as exc:
                    reader.close()
                    self._reader_error = self.self_check_error = f"online store self-check failed: {exc}"
                    log.error("%s", self._reader_error)
                    raise StoreUnavailableError(self._reader_error) from exc
                except Exception as exc:  # the store went away between the reads
                    reader.close()
                    self._reader_error = f"feature store unavailable: {exc}"
                    raise StoreUnavailableError(self._reader_error) from exc
                self.self_check_error = None
                if reader.view_names != self.view_names:
                    self.view_names = reader.view_names
                self._reader = reader
            return self._reader

    def read_features(self, rows: list[dict[str, str | None]], sched: np.ndarray) -> FeatureBatch:
        """The batch's features at departures ``sched`` (Unix seconds), values older than their view's ttl
        or stamped after the as-of time (departure minus ``model.horizon_minutes``) marked missing; StoreUnavailableError at once while the store is known to be down."""
        if time.monotonic() < self.store_down_until:
            raise StoreUnavailableError(
                f"online feature store unavailable (failed moments ago: {self.store_error})"
            )
        try:
            reader = self.reader()
            batch = reader.read(rows)
        except StoreUnavailableError as exc:
            self.store_error = str(exc)
            self.store_down_until = time.monotonic() + self.settings.serving.store_down_seconds
            raise
        self.store_error = None
        expired = reader.expire(batch, sched, self.settings.model.horizon_minutes * 60.0)
        for view, count in zip(reader.view_names, expired.tolist(), strict=True):
            if count:
                self.metrics.expired.labels(view).inc(count)
        return batch

    def model_matrix(
        self, flights: Sequence[Flight], sched: np.ndarray, store_matrix: np.ndarray
    ) -> np.ndarray:
        """The served matrix (``self.names`` columns): the store's features of the flights, then their
        request features (``hybridops.features.request``, the function training and batch scoring use),
        from the request's codes and departures ``sched`` (Unix seconds). The request features need no
        store: they are there when the store is down."""
        request = request_matrix(
            [f.carrier for f in flights],
            [f.origin for f in flights],
            [f.dest for f in flights],
            sched,
            np.ascontiguousarray(store_matrix[:, self._departed]),
        )
        return np.hstack((store_matrix, request))

    def readiness(self) -> list[str]:
        """Why this replica should not get traffic (empty when ready): no model, draining, or a reader
        that failed its self-check. Not the store's reachability (module docstring)."""
        problems = []
        if self.draining:
            problems.append("draining: the process is shutting down")
        if self.holder.current is None:
            problems.append(f"no model loaded ({self.holder.last_error})")
        if self.self_check_error:
            problems.append(self.self_check_error)
        return problems

    def start(self, freeze_gc: bool = False) -> None:
        self.holder.load_initial()
        self.holder.start()
        self.feature_log.start()
        try:
            self.reader()
        except StoreUnavailableError as exc:
            log.warning("%s", exc)
        if freeze_gc:
            # What start-up built (Feast, MLflow, pandas: ~400k objects) lives as long as the process;
            # frozen, the collector stops walking it (a full collection took ~0.4 s, a stall of every
            # request behind it). Only for a process of its own: frozen garbage is never freed.
            gc.collect()
            gc.freeze()

    def stop(self) -> None:
        self.holder.stop()
        self.feature_log.stop()
        if self._reader is not None:
            self._reader.close()
