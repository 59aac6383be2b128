"""The monitoring loop replayed on a crafted year: the concept changes, the loop notices and recovers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hybridops.monitoring.replay import replay, replay_table
from hybridops.settings import Settings

MONTHS = [f"2013-{m:02d}" for m in range(1, 11)]
FEATURES = ["x1", "x2", "regime", "season"]


def _year(rows: int = 2500) -> pd.DataFrame:
    """Months 01-06: the label follows x1; from 07 on it follows x2 (and ``regime`` says so). ``season``
    oscillates with the month and is unrelated to the label: drift that is only the season."""
    rng = np.random.default_rng(11)
    frames = []
    for index, month in enumerate(MONTHS):
        changed = index >= 6
        x1, x2 = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
        driver = x2 if changed else x1
        frames.append(
            pd.DataFrame(
                {
                    "month_key": month,
                    "x1": x1,
                    "x2": x2,
                    "regime": float(changed),
                    "season": rng.normal(10 * math.sin(index * math.pi / 3), 2, rows),
                    "label": (driver + rng.normal(0, 0.7, rows) > 0).astype("int64"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_the_loop_retrains_on_degradation_and_the_retrained_model_helps(tmp_path) -> None:
    settings = Settings(home=tmp_path, training={"num_boost_round": 30})
    months = replay(_year(), FEATURES, settings)
    by_month = {m.month_key: m for m in months}
    assert list(by_month) == MONTHS[5:]  # 5 training months, the holdout 06 and the months after it

    holdout = by_month["2013-06"]
    assert holdout.champion == "v1 (2013-01..2013-05)" and holdout.live_auc == holdout.holdout_auc
    assert not holdout.triggered and holdout.holdout_auc > 0.85
    # the season moves every month: flagged by the fixed thresholds, not by the learnt ones
    assert all(m.flagged_fixed >= 1 for m in months)
    assert by_month["2013-06"].flagged_learned == 0

    changed = by_month["2013-07"]  # the concept changed: the live AUC collapses, the loop acts
    assert changed.live_auc < 0.6 and changed.triggered and changed.degraded
    assert changed.reason.startswith("live ROC AUC")
    # regime drifted beyond anything seen, but the champion never split on it: no drift trigger
    assert changed.flagged_learned == 1 and changed.drifted_importance == 0 and not changed.drift_triggered
    # the first candidate never saw the new concept (it holds out 07): the gate refuses it
    assert changed.promoted is False and changed.next_month == "2013-08"

    recovered = by_month["2013-08"]  # v1 still degraded; the candidate trained through 07 learnt it
    assert recovered.triggered and recovered.promoted and recovered.helped
    assert recovered.candidate_next_auc is not None and recovered.champion_next_auc is not None
    assert recovered.candidate_next_auc > recovered.champion_next_auc + 0.2
    after = by_month["2013-09"]
    assert after.champion == "v2 (2013-01..2013-07)" and not after.triggered
    assert after.holdout_auc == recovered.candidate_auc and after.live_auc > 0.8

    table = replay_table(months)
    assert table.count("\n") == len(months) + 1
    assert "| 2013-08 | v1 (2013-01..2013-05) |" in table and "| promoted |" in table
