"""Predictions served while the rehearsal runs: the latest dropped month's flights sent to the inference
service in small batches, so the served-feature log has rows for the skew audit to compare."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import requests


def flights_payload(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Source rows as the service's request body: New York local scheduled departures."""
    out = []
    for row in frame.itertuples(index=False):
        sched = (
            f"{row.year}-{int(row.month):02d}-{int(row.day):02d}T{int(row.hour):02d}:{int(row.minute):02d}:00"
        )
        out.append(
            {
                "carrier": row.carrier,
                "flight": int(row.flight),
                "origin": row.origin,
                "dest": row.dest,
                "tailnum": row.tailnum if row.tailnum not in ("", "NA") else None,
                "sched_dep": sched,
            }
        )
    return out


@dataclass
class Traffic:
    """Posts ``batch`` flights every ``interval`` seconds to ``url`` once the service is ready (a model
    loaded); ``flights()`` gives the current pool to draw from. Counts what it sent and what was served."""

    url: str
    flights: Callable[[], list[dict[str, Any]]]
    batch: int = 50
    interval: float = 2.0
    requests_sent: int = 0
    predictions: int = 0
    degraded: int = 0
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        offset = 0
        while not self._stop.wait(self.interval):
            try:
                if requests.get(self.url + "/readyz", timeout=10).status_code != 200:
                    continue
                pool = self.flights()
                if not pool:
                    continue
                chunk = [pool[(offset + i) % len(pool)] for i in range(self.batch)]
                offset += self.batch
                answer = requests.post(self.url + "/predict", json={"flights": chunk}, timeout=60)
                self.requests_sent += 1
                if answer.status_code != 200:
                    self.errors += 1
                    continue
                served = answer.json()["predictions"]
                self.predictions += len(served)
                self.degraded += sum(1 for p in served if p.get("degraded"))
            except (requests.RequestException, ValueError, KeyError):
                self.errors += 1

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(target=self._loop, name="rehearsal-traffic", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=90)
