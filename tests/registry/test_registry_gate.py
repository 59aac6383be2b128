"""The promotion gate as a pure function of holdout metrics."""

from __future__ import annotations

import math

from hybridops.registry.gate import decide
from hybridops.settings import GateSettings

GATE = GateSettings(min_auc=0.60, max_brier=0.25, min_auc_improvement=0.01)


def test_better_candidate_is_promoted_with_the_numbers() -> None:
    decision = decide({"auc": 0.7312, "brier": 0.1810}, {"auc": 0.7100, "brier": 0.1900}, GATE)
    assert decision.promote
    assert decision.checks == {"min_auc": True, "max_brier": True, "improvement": True}
    for number in ("0.7312", "0.1810", "0.7100", "+0.0212", "0.0100", "0.6000", "0.2500"):
        assert number in decision.reason
    assert decision.reason.startswith("Promote")


def test_worse_candidate_is_refused() -> None:
    decision = decide({"auc": 0.6800, "brier": 0.2000}, {"auc": 0.7100, "brier": 0.1900}, GATE)
    assert not decision.promote
    assert decision.checks["improvement"] is False
    assert decision.checks["min_auc"] and decision.checks["max_brier"]
    assert decision.reason.startswith("Refuse")
    assert "-0.0300" in decision.reason and "0.7100" in decision.reason and "0.0100" in decision.reason


def test_improvement_below_the_margin_is_refused() -> None:
    decision = decide({"auc": 0.7150, "brier": 0.1800}, {"auc": 0.7100, "brier": 0.1900}, GATE)
    assert not decision.promote
    assert decision.checks == {"min_auc": True, "max_brier": True, "improvement": False}
    assert "+0.0050" in decision.reason and "0.0100" in decision.reason


def test_exact_margin_passes() -> None:
    gate = GateSettings(min_auc=0.5, max_brier=0.25, min_auc_improvement=0.0)
    assert decide({"auc": 0.70, "brier": 0.2}, {"auc": 0.70, "brier": 0.2}, gate).promote


def test_auc_floor_refuses_without_champion() -> None:
    decision = decide({"auc": 0.5500, "brier": 0.2000}, None, GATE)
    assert not decision.promote
    assert decision.checks == {"min_auc": False, "max_brier": True, "improvement": True}
    assert "0.5500" in decision.reason and "0.6000" in decision.reason


def test_brier_ceiling_refuses_without_champion() -> None:
    decision = decide({"auc": 0.8000, "brier": 0.3100}, None, GATE)
    assert not decision.promote
    assert decision.checks == {"min_auc": True, "max_brier": False, "improvement": True}
    assert "0.3100" in decision.reason and "0.2500" in decision.reason


def test_first_model_above_the_floors_is_promoted() -> None:
    decision = decide({"auc": 0.6500, "brier": 0.2400}, None, GATE)
    assert decision.promote
    assert "no champion" in decision.reason


def test_floors_apply_even_when_beating_the_champion() -> None:
    decision = decide({"auc": 0.5900, "brier": 0.2000}, {"auc": 0.5000, "brier": 0.2500}, GATE)
    assert not decision.promote
    assert decision.checks["improvement"] and not decision.checks["min_auc"]


def test_missing_or_nan_metrics_fail_closed() -> None:
    assert not decide({"auc": math.nan, "brier": 0.1}, None, GATE).promote
    assert not decide({"auc": 0.8}, None, GATE).promote
    no_champion_auc = decide({"auc": 0.8, "brier": 0.1}, {"brier": 0.1}, GATE)
    assert not no_champion_auc.promote
    assert "missing" in no_champion_auc.reason
