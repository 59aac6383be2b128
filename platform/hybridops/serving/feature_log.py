"""A sample of served feature vectors, appended as Parquet for the online/offline skew audit.

Each served flight is kept with probability ``serving.log_sample_rate``; kept rows are buffered in memory
and written as one Parquet file per flush to
``<home>/serving/feature_log/date=YYYY-MM-DD/<writer>-<unix ms>-<random>.parquet`` when the buffer reaches
``serving.log_flush_rows``, every ``serving.log_flush_seconds`` and at shutdown. ``<writer>`` is the host
name (the pod's name in the cluster) and the process id, so the replicas of the service write files of their
own into one folder on the shared data volume, which the skew audit (a run pod on the same volume) reads.

The folder is bounded: after each flush the writer deletes the oldest files of the folder (any writer's,
so files of pods that are gone are removed too) until it holds at most ``serving.log_max_bytes`` (or only the
newest file, when that alone is larger); the audit compares the most recent served rows. Deleting a file another writer deletes at the same time is harmless. Columns: ``served_at``
(UTC), ``model_name``, ``model_version``, the request's flight fields, ``route``, ``sched_dep_utc``, every
feature (NaN = missing), ``<view>_event_timestamp`` (UTC) per view, ``delay_probability`` and ``degraded``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridops.serving.metrics import ServingMetrics
from hybridops.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    served_at: float
    model: tuple[str, str]
    flights: list[dict[str, Any]]
    matrix: np.ndarray
    event_ts: np.ndarray
    probabilities: np.ndarray
    degraded: np.ndarray
    sched_dep_unix: np.ndarray


def feature_log_dir(settings: Settings) -> Path:
    return settings.home_dir / "serving" / "feature_log"


def log_files(folder: Path) -> list[Path]:
    """The finished log files of ``folder``, oldest first (by their flush time, then name)."""

    def flushed_at(path: Path) -> tuple[int, str]:
        stamp = next((part for part in path.stem.split("-") if part.isdigit() and len(part) >= 13), "0")
        return int(stamp), path.name

    return sorted(folder.glob("date=*/*.parquet"), key=flushed_at)


def writer_id() -> str:
    """This process's prefix of its log files: host (pod) name and pid, safe as a file name."""
    return re.sub(r"[^A-Za-z0-9_.]+", "_", f"{socket.gethostname()}_{os.getpid()}")


def enforce_bound(folder: Path, max_bytes: int) -> int:
    """Delete the oldest log files until the folder holds at most ``max_bytes``; the bytes removed."""
    sized = []
    for path in log_files(folder):
        try:
            sized.append((path, path.stat().st_size))
        except FileNotFoundError:  # another writer removed it
            continue
    total = sum(size for _, size in sized)
    removed = 0
    for path, size in sized[:-1]:  # the newest file stays, even alone above the bound
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed += size
    today = f"date={datetime.now(UTC):%Y-%m-%d}"  # another writer may be about to write into today's
    for day in folder.glob("date=*"):
        if day.name < today:
            with contextlib.suppress(OSError):  # rmdir removes only an empty day (all its files aged out)
                day.rmdir()
    return removed


class FeatureLog:
    def __init__(
        self, settings: Settings, names: list[str], views: list[str], metrics: ServingMetrics
    ) -> None:
        self.folder = feature_log_dir(settings)
        self.rate = settings.serving.log_sample_rate
        self.flush_rows = settings.serving.log_flush_rows
        self.flush_seconds = settings.serving.log_flush_seconds
        self.max_bytes = settings.serving.log_max_bytes
        self.writer = writer_id()
        self.names = names
        self.views = views
        self.metrics = metrics
        self._chunks: list[_Entry] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._random = random.Random().random
        self._thread: threading.Thread | None = None

    def add(
        self,
        flights: Sequence[Any],
        routes: Sequence[str],
        matrix: np.ndarray,
        event_ts: np.ndarray,
        probabilities: np.ndarray,
        degraded: np.ndarray,
        sched_dep_unix: np.ndarray,
        model: tuple[str, str],
    ) -> None:
        """Buffer a sample of one request's rows (cheap: the frame is built at flush, off the request)."""
        if self.rate <= 0:
            return
        n = len(flights)
        # plain random per flight: most requests have a few flights and keep none (numpy's draw costs more)
        picked = [i for i in range(n) if self._random() < self.rate] if self.rate < 1 else list(range(n))
        if not picked:
            return
        keep = np.array(picked, dtype=np.intp)
        entry = _Entry(
            served_at=time.time(),
            model=model,
            flights=[flights[i].model_dump() | {"route": routes[i]} for i in picked],
            matrix=matrix[keep],
            event_ts=event_ts[keep],
            probabilities=probabilities[keep],
            degraded=degraded[keep],
            sched_dep_unix=sched_dep_unix[keep],
        )
        with self._lock:
            self._chunks.append(entry)
            self._rows += len(picked)
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def _frame(self, chunks: list[_Entry]) -> pd.DataFrame:
        """One frame built from whole columns (inserting them one by one cost the flush thread, which
        shares the service's core, about 10 ms per flush)."""
        counts = [len(c.flights) for c in chunks]
        flights = pd.DataFrame([row for c in chunks for row in c.flights])
        flights["sched_dep"] = flights["sched_dep"].astype("string")
        columns: dict[str, Any] = {
            "served_at": pd.to_datetime(np.repeat([c.served_at for c in chunks], counts), unit="s", utc=True),
            "model_name": np.repeat([c.model[0] for c in chunks], counts),
            "model_version": np.repeat([c.model[1] for c in chunks], counts),
        }
        columns.update({name: flights[name].to_numpy() for name in flights.columns})
        columns["sched_dep"] = flights["sched_dep"].array
        columns["sched_dep_utc"] = pd.to_datetime(
            np.concatenate([c.sched_dep_unix for c in chunks]), unit="s", utc=True
        )
        matrix = np.concatenate([c.matrix for c in chunks])
        columns.update({name: matrix[:, j] for j, name in enumerate(self.names)})
        stamps = np.concatenate([c.event_ts for c in chunks])
        for v, view in enumerate(self.views):
            columns[f"{view}_event_timestamp"] = pd.to_datetime(stamps[:, v], unit="s", utc=True)
        columns["delay_probability"] = np.concatenate([c.probabilities for c in chunks])
        columns["degraded"] = np.concatenate([c.degraded for c in chunks])
        return pd.DataFrame(columns)

    def flush(self) -> Path | None:
        with self._lock:
            chunks, self._chunks, self._rows = self._chunks, [], 0
        if not chunks:
            return None
        now = datetime.now(UTC)
        folder = self.folder / f"date={now:%Y-%m-%d}"
        path = folder / f"{self.writer}-{int(now.timestamp() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
        with self._write_lock:
            try:
                frame = self._frame(chunks)
                folder.mkdir(parents=True, exist_ok=True)
                # Written under a hidden name, then renamed: a reader of the folder (the skew audit,
                # pd.read_parquet) never sees a file still being written (a 0-byte Parquet fails it).
                partial = path.with_name(f".{path.name}.partial")
                frame.to_parquet(partial, index=False)
                partial.replace(path)
                enforce_bound(self.folder, self.max_bytes)
            except Exception as exc:  # the log is best effort: never fail serving for it
                log.warning("cannot write the feature log %s: %s", path, exc)
                return None
        self.metrics.feature_log_rows.inc(len(frame))
        return path

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hybridops-feature-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(timeout=min(self.flush_seconds, 1.0))
            self._wake.clear()
            if self._rows >= self.flush_rows or time.monotonic() - last >= self.flush_seconds:
                self.flush()
                last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
