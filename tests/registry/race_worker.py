"""One of the processes of the registry race (test_registry_concurrency.py), run as ``python race_worker.py``.

``model`` mode waits for the start signal, then registers the model the test logged for it (in a run of
its own; two workers with one training id have runs of the same training) with its training fingerprint
and promotes it. ``feast`` mode waits for the signal and applies the feature
definitions to the SQL registry. Each writes what it did as JSON; an exception exits non-zero.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from hybridops.settings import FeastSettings, MlflowSettings, Settings


def wait_for(go: Path, ready: Path) -> None:
    ready.touch()
    deadline = time.monotonic() + 600
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("no start signal")
        time.sleep(0.01)


def model(args: dict) -> dict:
    from hybridops.registry.models import promote, register_candidate

    settings = Settings(
        home=args["home"], mlflow=MlflowSettings(tracking_uri=args["tracking_uri"], model_name="race")
    )
    wait_for(Path(args["go"]), Path(args["ready"]))
    started = time.monotonic()
    version = register_candidate(
        settings,
        args["model_uri"],
        args["run_id"],
        args["sha256"],
        description=f"worker {args['index']}",
        fingerprint=f"training-{args['training']}",
    )
    promote(settings, version, f"worker {args['index']}")
    return {"version": version, "seconds": time.monotonic() - started}


def feast(args: dict) -> dict:
    from hybridops.features.store import apply_definitions, feature_store

    settings = Settings(home=args["home"], feast=FeastSettings(registry=args["registry"]))
    store = feature_store(settings)
    wait_for(Path(args["go"]), Path(args["ready"]))
    started = time.monotonic()
    names = apply_definitions(store, settings)
    return {"applied": names, "seconds": time.monotonic() - started}


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    result = {"model": model, "feast": feast}[arguments["mode"]](arguments)
    Path(arguments["out"]).write_text(json.dumps(result))
