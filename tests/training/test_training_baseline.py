"""The plain baseline (no feature store) and the gate's margin over it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from training_support import SYNTHETIC_MONTHS, synthetic_warehouse

from hybridops.errors import HybridopsError
from hybridops.registry.gate import decide
from hybridops.settings import GateSettings, TrainingSettings
from hybridops.training.baseline import BASELINE_FEATURES, baseline_frame, train_baseline
from hybridops.training.split import SplitPlan

GATE = GateSettings(min_auc=0.60, max_brier=0.25, min_auc_improvement=0.01, min_baseline_margin=0.02)


def test_a_candidate_must_beat_the_plain_baseline_by_the_margin() -> None:
    refused = decide({"auc": 0.7300, "brier": 0.18, "baseline_auc": 0.7150}, None, GATE)
    assert not refused.promote and refused.checks["baseline"] is False
    assert "+0.0150" in refused.reason and "0.7150" in refused.reason and "0.0200" in refused.reason
    promoted = decide({"auc": 0.7400, "brier": 0.18, "baseline_auc": 0.7150}, None, GATE)
    assert promoted.promote and promoted.checks["baseline"] is True
    assert "+0.0250" in promoted.reason and "plain baseline" in promoted.reason
    # beating the champion is not enough when the baseline is not beaten
    beats_champion = decide({"auc": 0.73, "brier": 0.18, "baseline_auc": 0.72}, {"auc": 0.70}, GATE)
    assert beats_champion.checks["improvement"] and not beats_champion.promote


def test_a_missing_baseline_auc_fails_closed() -> None:
    decision = decide({"auc": 0.74, "brier": 0.18, "baseline_auc": float("nan")}, None, GATE)
    assert not decision.promote and decision.checks["baseline"] is False
    assert "missing" in decision.reason


def test_baseline_reads_the_request_columns_and_the_weather_of_the_scheduled_hour(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        fct = synthetic_warehouse(con, SYNTHETIC_MONTHS)
        frame = baseline_frame(con, SYNTHETIC_MONTHS)
        departed = fct[~fct["cancelled"]]
        assert len(frame) == len(departed) and set(BASELINE_FEATURES) <= set(frame.columns)
        # the warehouse's own weather copy of fct_flights (the synthetic builder writes -1.0 there)
        assert (frame["temp"] == -1.0).all()
        plan = SplitPlan(train=SYNTHETIC_MONTHS[:2], holdout=SYNTHETIC_MONTHS[2], score=SYNTHETIC_MONTHS[2:])
        settings = TrainingSettings(min_rows=100, num_boost_round=40)
        result = train_baseline(con, plan, settings)
        holdout = departed[departed["month_key"] == plan.holdout]
        assert result.holdout_metrics.rows == len(holdout)
        # the synthetic delays depend on the carrier: the request columns carry signal
        assert 0.55 < result.holdout_metrics.auc < 1.0
        assert train_baseline(con, plan, settings).holdout_metrics.auc == result.holdout_metrics.auc
        with pytest.raises(HybridopsError, match="0 holdout rows"):
            train_baseline(con, SplitPlan(train=plan.train, holdout="2013-09", score=[]), settings)
    finally:
        con.close()
