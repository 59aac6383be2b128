"""The state of one prediction service: settings, metrics, model holder, feature reader, feature log.

The online store is not tried by ``/predict`` for ``serving.store_down_seconds`` after a failed read, so a
hung store costs one bounded wait per interval rather than one per request (and the event loop stays free
for ``/healthz``); ``/readyz`` always tries and ends the pause when the store answers.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from hybridops.features.store import feature_names, feature_store, load_definitions_module
from hybridops.serving.feature_log import FeatureLog
from hybridops.serving.features import FeatureBatch, OnlineFeatureReader, StoreUnavailableError
from hybridops.serving.metrics import ServingMetrics
from hybridops.serving.model_holder import ModelHolder
from hybridops.serving.self_check import SelfCheckError, check_store
from hybridops.settings import Settings

log = logging.getLogger(__name__)
_READER_RETRY_SECONDS = 2.0


class Service:
    """The state of one app: settings, metrics, model holder, feature reader and feature log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ServingMetrics()
        self.names = feature_names()
        self.view_names = list(load_definitions_module().VIEW_FEATURES)
        self.holder = ModelHolder(settings, self.names, self.metrics)
        self.feature_log = FeatureLog(settings, self.names, self.view_names, self.metrics)
        self._reader: OnlineFeatureReader | None = None
        self._reader_error: str | None = None
        self._reader_tried = 0.0
        self._reader_lock = threading.Lock()
        self.store_down_until = 0.0  # monotonic time before which /predict does not try the store

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
                    self._reader_error = f"online store self-check failed: {exc}"
                    log.error("%s", self._reader_error)
                    raise StoreUnavailableError(self._reader_error) from exc
                except Exception as exc:  # the store went away between the reads
                    reader.close()
                    self._reader_error = f"feature store unavailable: {exc}"
                    raise StoreUnavailableError(self._reader_error) from exc
                if reader.view_names != self.view_names:
                    self.view_names = reader.view_names
                self._reader = reader
            return self._reader

    def read_features(self, rows: list[dict[str, str | None]]) -> FeatureBatch:
        """The batch's features; StoreUnavailableError at once while the store is known to be down."""
        if time.monotonic() < self.store_down_until:
            raise StoreUnavailableError("online feature store unavailable (failed moments ago)")
        try:
            return self.reader().read(rows)
        except StoreUnavailableError:
            self.store_down_until = time.monotonic() + self.settings.serving.store_down_seconds
            raise

    def ping_store(self) -> None:
        """A real read, whatever the last one did (readiness must see the store come back)."""
        try:
            self.reader().ping()
        except StoreUnavailableError:
            self.store_down_until = time.monotonic() + self.settings.serving.store_down_seconds
            raise
        self.store_down_until = 0.0

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
