"""Replay the 2013 monitoring loop on the real data: drift flags, live AUC, triggers, and whether they helped.

Run: ``.venv/bin/python benchmarks/drift_replay.py [--months 2013-01:2013-12] [--home DIR]``

Without ``--home``, ``hybridops run`` first loads the months into a fresh temporary home (the real
pipeline: ingest, checks, warehouse, Feast). With ``--home``, a home where ``hybridops run`` already loaded
them is reused. The labelled flights of every month are then joined point-in-time with the Feast features
(the training code's own ``build_training_set``) and ``hybridops.monitoring.replay`` walks the months in
order with the platform's monitoring, loop, training and gate functions and the default settings (see its
docstring). Prints the Markdown table of ``docs/mlops.md`` and the totals.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hybridops.months import parse_month_range
from hybridops.settings import Settings


def labelled_frame(settings: Settings, months: list[str]):
    from hybridops.features.store import feature_store
    from hybridops.training.dataset import build_training_set, labelled_flights
    from hybridops.warehouse.db import connect

    with connect(settings, read_only=True) as con:
        labelled = labelled_flights(con, months)
    built = build_training_set(
        feature_store(settings), labelled.entities, settings.training, cache_dir=settings.feature_cache_dir
    )
    return built.frame, built.features


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", default="2013-01:2013-12")
    parser.add_argument("--home", type=Path, help="a home where `hybridops run` loaded the months")
    args = parser.parse_args(argv)
    months = parse_month_range(args.months, "2013-01", "2013-12")
    temporary = None if args.home else Path(tempfile.mkdtemp(prefix="hybridops-drift-replay-"))
    home = args.home or temporary
    assert home is not None
    try:
        settings = Settings(home=home)
        started = time.perf_counter()
        if temporary is not None:
            from hybridops.orchestration.runner import run_pipeline

            summary = run_pipeline(settings, months)
            if summary.status != "success":
                print(f"hybridops run failed: {summary.status}", file=sys.stderr)
                return 1
            print(f"hybridops run: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        from hybridops.monitoring.replay import replay, replay_table

        frame, features = labelled_frame(settings, months)
        replayed = replay(frame, features, settings)
        print(replay_table(replayed))
        triggered = [m for m in replayed if m.triggered]
        judged = [m for m in triggered if m.helped is not None]
        print()
        print(
            f"{len(replayed)} scored months, {len(frame)} labelled flights, {len(features)} features; "
            f"months with features flagged: before {sum(m.flagged_fixed > 0 for m in replayed)}, "
            f"after {sum(m.flagged_learned > 0 for m in replayed)}; flags in all: before "
            f"{sum(m.flagged_fixed for m in replayed)}, after {sum(m.flagged_learned for m in replayed)}; "
            f"retrainings triggered: {len(triggered)}, promoted: {sum(bool(m.promoted) for m in triggered)}, "
            f"candidate better on the following month: {sum(bool(m.helped) for m in judged)} of {len(judged)}; "
            f"{time.perf_counter() - started:.1f} s"
        )
        for m in triggered:
            print(f"- {m.month_key}: {m.reason}. Gate: {m.gate_reason}")
        return 0
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
