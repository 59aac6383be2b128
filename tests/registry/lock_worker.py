"""One process of the alias-lock exclusion test (test_registry_lock.py), run as ``python lock_worker.py``.

Waits for the start signal, then takes the lock ``rounds`` times; inside it reads the lowest live ticket
(its own), notes the wall-clock times it entered and left, and sleeps ``hold`` seconds. Writes the
records as JSON; an exception exits non-zero.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

from hybridops.registry.lock import alias_lock, lock_name, tickets


def main(args: dict) -> None:
    client = MlflowClient(tracking_uri=args["tracking_uri"], registry_uri=args["tracking_uri"])
    # A process's first request imports much of MLflow (seconds on a loaded machine): done before the start,
    # so the waits measured are the lock's.
    client.search_registered_models(max_results=1)
    Path(args["ready"]).touch()
    deadline = time.monotonic() + 600
    while not Path(args["go"]).exists():
        if time.monotonic() > deadline:
            raise SystemExit("no start signal")
        time.sleep(0.01)
    records = []
    for _ in range(args["rounds"]):
        asked = time.time()
        with alias_lock(client, args["model"], timeout_seconds=300, stale_seconds=120):
            entered = time.time()
            head = tickets(client, lock_name(args["model"]))[0]
            time.sleep(args["hold"])
            records.append({"ticket": head.version, "holder": head.holder, "asked": asked,
                            "entered": entered, "left": time.time()})  # fmt: skip
    Path(args["out"]).write_text(json.dumps(records))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
