"""The champion's features against the plain baseline on the pipeline's splits, on the real 2013 data.

Run: ``.venv/bin/python benchmarks/model_splits.py [--home DIR]``

Without ``--home``, ``hybridops run`` first loads the year into a fresh temporary home (the real pipeline:
ingest, checks, warehouse, Feast). With ``--home``, a home where ``hybridops run`` already loaded 2013 is
reused. For each split (train January to the month before the holdout), the platform's own functions
train and measure on the same departed holdout flights: ``labelled_flights`` -> ``build_training_set``
(point-in-time Feast features at the as-of time, then the request features) -> ``train_model`` with
``model_features()`` (the champion's inputs) and with the stored views' features alone, and
``train_baseline`` (no feature store). Prints the Markdown table of ``docs/mlops.md``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hybridops.settings import Settings

# holdout month -> what the split is in the pipeline
SPLITS = {
    "2013-04": "2013-04 (Jan to Mar)",
    "2013-07": "2013-07 (Jan to Jun), the pipeline's",
    "2013-12": "2013-12 (Jan to Nov), the loop's retraining",
}


@dataclass(frozen=True)
class Split:
    split: str
    champion: float  # holdout AUC of the champion's inputs (model_features())
    views: float  # of the stored views' features alone
    baseline: float  # of the plain baseline
    flights: int  # departed holdout flights


def measure(settings: Settings) -> list[Split]:
    from hybridops.features.request import STORE_INPUTS, model_features
    from hybridops.features.store import feature_names, feature_store
    from hybridops.training.baseline import train_baseline
    from hybridops.training.dataset import build_training_set, labelled_flights
    from hybridops.training.split import SplitPlan
    from hybridops.training.train import train_model
    from hybridops.warehouse.db import connect

    months = [f"2013-{m:02d}" for m in range(1, 13)]
    with connect(settings, read_only=True) as con:
        labelled = labelled_flights(con, months, settings.model.horizon_minutes)
    built = build_training_set(
        feature_store(settings), labelled.entities, settings.training, cache_dir=settings.feature_cache_dir
    )
    frame = built.frame
    views_only = [name for name in feature_names() if name not in STORE_INPUTS]
    rows = []
    for holdout, label in SPLITS.items():
        train_months = [m for m in months if m < holdout]
        train, test = frame[frame["month_key"].isin(train_months)], frame[frame["month_key"] == holdout]
        champion = train_model(train, test, model_features(), settings.training)
        views = train_model(train, test, views_only, settings.training)
        with connect(settings, read_only=True) as con:
            baseline = train_baseline(con, SplitPlan(train_months, holdout, []), settings.training)
        rows.append(
            Split(
                label,
                champion.holdout_metrics.auc,
                views.holdout_metrics.auc,
                baseline.holdout_metrics.auc,
                len(test),
            )
        )
    return rows


def table(rows: list[Split]) -> str:
    lines = [
        "| holdout (train months) | Feast + request features (champion) | plain baseline | margin "
        "| Feast views alone | holdout flights |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.split} | {r.champion:.4f} | {r.baseline:.4f} | {r.champion - r.baseline:+.4f} "
            f"| {r.views:.4f} | {r.flights:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a home where `hybridops run` loaded 2013")
    args = parser.parse_args(argv)
    temporary = None if args.home else Path(tempfile.mkdtemp(prefix="hybridops-model-splits-"))
    home = args.home or temporary
    assert home is not None
    try:
        settings = Settings(home=home)
        started = time.perf_counter()
        if temporary is not None:
            from hybridops.orchestration.runner import run_pipeline

            summary = run_pipeline(settings, [f"2013-{m:02d}" for m in range(1, 13)])
            if summary.status != "success":
                print(f"hybridops run failed: {summary.status}", file=sys.stderr)
                return 1
            print(f"hybridops run: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        print(table(measure(settings)))
        print(f"\n{time.perf_counter() - started:.1f} s", file=sys.stderr)
        return 0
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
