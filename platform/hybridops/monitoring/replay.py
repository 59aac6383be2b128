"""Replay the monitoring loop month by month over labelled months, as the platform would have lived them.

The first champion trains as the pipeline's does (``plan_split``: the first half of the months, the next
month held out). Then each month from the holdout on, once its outcomes are known:

1. the champion's drift against its training months is measured twice: with the fixed thresholds
   (``monitoring.psi_threshold`` / ``ks_threshold`` for every feature, the old behaviour) and with the
   thresholds learnt from the training window (``hybridops.monitoring.thresholds``), weighted by the
   champion's gain importances (``hybridops.monitoring.importance``);
2. its live AUC on the month's outcomes, and the PSI of its scores against its holdout scores;
3. the month's report (``hybridops.monitoring.report.drift_report``) and the loop's decision
   (``hybridops.monitoring.loop.decide``) say whether retraining is requested;
4. a requested retraining trains a candidate on every month before the signalling one and holds that
   month out, exactly as the loop's training run does; the promotion gate (``hybridops.registry.gate``)
   compares it with the champion on that month; whatever the gate says, the candidate and the champion are
   both scored on the **following** month, the test of whether retraining helped;
5. a promoted candidate becomes the champion of the next months (its training months are the new drift
   reference, its holdout AUC the new degradation baseline).

Everything is computed by the platform's own functions; the replay only feeds them the months in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from hybridops.monitoring.drift import DriftReference, feature_drift, prediction_drift
from hybridops.monitoring.importance import gain_weights
from hybridops.monitoring.loop import RetrainSignal, decide
from hybridops.monitoring.report import drift_report
from hybridops.monitoring.thresholds import learn_thresholds
from hybridops.registry.gate import decide as gate_decide
from hybridops.settings import Settings
from hybridops.training.split import plan_split
from hybridops.training.train import TrainedModel, evaluate, predict, train_model


@dataclass(frozen=True)
class ReplayMonth:
    """One scored month of the replay."""

    month_key: str
    champion: str  # "v1" ... and its training months
    rows: int
    features: int
    flagged_fixed: int  # features flagged with the fixed thresholds (the old behaviour)
    flagged_learned: int  # features flagged with the learnt thresholds
    drifted_importance: float
    live_auc: float
    holdout_auc: float
    prediction_psi: float
    triggered: bool
    reason: str
    degraded: bool = False  # the live AUC rule fired
    drift_triggered: bool = False  # the importance-weighted drift rule fired
    candidate_auc: float | None = None  # the candidate on the signalling month (the gate's holdout)
    promoted: bool | None = None
    gate_reason: str | None = None
    next_month: str | None = None
    candidate_next_auc: float | None = None
    champion_next_auc: float | None = None

    @property
    def helped(self) -> bool | None:
        """The candidate beat the champion on the following month (None: no retraining or no next month)."""
        if self.candidate_next_auc is None or self.champion_next_auc is None:
            return None
        return self.candidate_next_auc > self.champion_next_auc


@dataclass
class _Champion:
    version: int
    trained: TrainedModel
    train_months: list[str]
    holdout_month: str
    holdout_auc: float
    reference: DriftReference
    reference_frame: pd.DataFrame
    holdout_scores: np.ndarray

    @property
    def label(self) -> str:
        return f"v{self.version} ({self.train_months[0]}..{self.train_months[-1]})"


def _month_end(month_key: str) -> datetime:
    year, month = (int(part) for part in month_key.split("-"))
    return datetime(year + month // 12, month % 12 + 1, 1)


def _champion(
    frame: pd.DataFrame,
    features: list[str],
    train_months: list[str],
    holdout_month: str,
    version: int,
    settings: Settings,
    trained: TrainedModel | None = None,
) -> _Champion:
    train = frame[frame["month_key"].isin(train_months)].reset_index(drop=True)
    holdout = frame[frame["month_key"] == holdout_month].reset_index(drop=True)
    if trained is None:
        trained = train_model(train, holdout, features, settings.training)
    return _Champion(
        version=version,
        trained=trained,
        train_months=list(train_months),
        holdout_month=holdout_month,
        holdout_auc=trained.holdout_metrics.auc,
        reference=DriftReference(train, features, settings.monitoring.bins),
        reference_frame=train,
        holdout_scores=predict(trained.booster, holdout, features),
    )


def replay(frame: pd.DataFrame, features: list[str], settings: Settings) -> list[ReplayMonth]:
    """Replay the loop over the months of ``frame`` (``month_key``, ``label`` and ``features``).

    Raises:
        HybridopsError: fewer than two months, or a split or training the platform refuses.
    """
    months = sorted(frame["month_key"].unique())
    plan = plan_split(months, settings.training.train_months)
    by_month = {month: frame[frame["month_key"] == month].reset_index(drop=True) for month in months}
    champion = _champion(frame, features, plan.train, plan.holdout, 1, settings)
    requested: set[str] = set()
    last_retrain: datetime | None = None
    result: list[ReplayMonth] = []
    for index, month in enumerate(plan.score):
        current = by_month[month]
        booster = champion.trained.booster
        thresholds = learn_thresholds(champion.reference, champion.reference_frame, settings.monitoring)
        fixed = feature_drift(champion.reference, current, features, settings.monitoring)
        learned = feature_drift(champion.reference, current, features, settings.monitoring, thresholds)
        scores = predict(booster, current, features)
        live = evaluate(booster, current, features)
        perf = {"auc": None if math.isnan(live.auc) else live.auc, "rows": live.rows, "note": None}
        report = drift_report(
            month,
            learned,
            prediction_drift(champion.holdout_scores, scores, settings.monitoring),
            perf,
            settings.monitoring,
            model_version=champion.version,
            holdout_auc=champion.holdout_auc,
            weights=gain_weights(booster),
            holdout_month=champion.holdout_month,
        )
        signals = (
            [RetrainSignal(month, "drift", "; ".join(report.reasons))] if report.retrain_recommended else []
        )
        decision = decide(
            signals, str(champion.version), last_retrain, requested, _month_end(month), settings.monitoring
        )
        row = ReplayMonth(
            month_key=month,
            champion=champion.label,
            rows=len(current),
            features=len(features),
            flagged_fixed=int(fixed["drifted"].sum()),
            flagged_learned=len(report.drifted_features),
            drifted_importance=report.drifted_importance,
            live_auc=live.auc,
            holdout_auc=champion.holdout_auc,
            prediction_psi=float((report.prediction or {}).get("psi", math.nan)),
            triggered=decision.retrain,
            reason="; ".join(report.reasons) if decision.retrain else decision.why,
            degraded=report.degraded,
            drift_triggered=report.drift_triggered,
        )
        if decision.retrain:
            requested.add(decision.trigger_key or "")
            last_retrain = _month_end(month)
            train_months = [m for m in months if m < month]
            candidate = _champion(frame, features, train_months, month, champion.version + 1, settings)
            champion_on_month = evaluate(booster, current, features)
            gate = gate_decide(
                {"auc": candidate.holdout_auc, "brier": candidate.trained.holdout_metrics.brier},
                {"auc": champion_on_month.auc, "brier": champion_on_month.brier},
                settings.gate,
            )
            following = plan.score[index + 1] if index + 1 < len(plan.score) else None
            next_frame = by_month[following] if following else None
            row = _with_retraining(row, candidate, gate.promote, gate.reason, following, next_frame, booster)
            if gate.promote:
                champion = candidate
        result.append(row)
    return result


def _with_retraining(
    row: ReplayMonth,
    candidate: _Champion,
    promoted: bool,
    gate_reason: str,
    following: str | None,
    next_frame: pd.DataFrame | None,
    champion_booster: object,
) -> ReplayMonth:
    features = candidate.trained.features
    candidate_next = champion_next = None
    if next_frame is not None:
        candidate_next = evaluate(candidate.trained.booster, next_frame, features).auc
        champion_next = evaluate(champion_booster, next_frame, features).auc  # type: ignore[arg-type]
    return ReplayMonth(
        **{
            **row.__dict__,
            "candidate_auc": candidate.holdout_auc,
            "promoted": promoted,
            "gate_reason": gate_reason,
            "next_month": following,
            "candidate_next_auc": candidate_next,
            "champion_next_auc": champion_next,
        }
    )


NONE = "\u2013"  # an en dash: the docs' "not applicable"


def replay_table(months: list[ReplayMonth]) -> str:
    """The replay as a Markdown table (one row per scored month)."""

    def auc(value: float | None) -> str:
        return NONE if value is None or math.isnan(value) else f"{value:.3f}"

    lines = [
        "| month | champion | flagged before (fixed) | flagged after (learnt) | drifted importance | "
        "live AUC | holdout AUC | score PSI | retraining | candidate AUC (month) | gate | "
        "next month: candidate / champion AUC | helped |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in months:
        causes = [name for name, fired in (("AUC drop", m.degraded), ("drift", m.drift_triggered)) if fired]
        trigger = f"yes ({' + '.join(causes)})" if m.triggered else "no"
        gate = NONE if m.promoted is None else ("promoted" if m.promoted else "refused")
        following = (
            NONE
            if m.next_month is None
            else f"{m.next_month}: {auc(m.candidate_next_auc)} / {auc(m.champion_next_auc)}"
        )
        helped = NONE if m.helped is None else ("yes" if m.helped else "no")
        lines.append(
            f"| {m.month_key} | {m.champion} | {m.flagged_fixed} of {m.features} | "
            f"{m.flagged_learned} of {m.features} | {m.drifted_importance:.0%} | {auc(m.live_auc)} | "
            f"{auc(m.holdout_auc)} | {m.prediction_psi:.3f} | {trigger} | {auc(m.candidate_auc)} | {gate} | "
            f"{following} | {helped} |"
        )
    return "\n".join(lines)
