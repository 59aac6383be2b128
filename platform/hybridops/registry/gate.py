"""The promotion gate: may a candidate model replace the champion?

Pure function of metrics. The caller measures the candidate and the current champion on the **same
holdout**, so the AUC comparison is like for like. A candidate is promoted when

* its holdout ROC AUC is at least ``min_auc`` (an absolute floor),
* its Brier score is at most ``max_brier`` (an absolute ceiling), and
* there is no champion, or its AUC beats the champion's by at least ``min_auc_improvement``, and
* when the candidate's metrics carry ``baseline_auc`` (the plain baseline, ``hybridops.training.baseline``,
  trained on the same months and measured on the same holdout; the pipeline always measures it), its AUC
  beats the baseline's by at least ``min_baseline_margin``.

A missing or non-finite metric fails its check (a NaN AUC from a one-class holdout is never "good enough"),
and so does a champion without a holdout AUC: the gate fails closed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from hybridops.settings import GateSettings


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict: ``promote``, a one-sentence ``reason`` with the numbers, and each check."""

    promote: bool
    reason: str
    checks: dict[str, bool] = field(default_factory=dict)


def _metric(metrics: Mapping[str, float] | None, key: str) -> float | None:
    if metrics is None or key not in metrics or metrics[key] is None:
        return None
    value = float(metrics[key])
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "missing" if value is None else f"{value:.4f}"


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    settings: GateSettings,
) -> GateDecision:
    """Decide whether ``candidate`` (metrics ``auc``, ``brier``, optionally ``baseline_auc``) replaces
    ``champion`` (None: no champion)."""
    auc = _metric(candidate, "auc")
    brier = _metric(candidate, "brier")
    checks: dict[str, bool] = {
        "min_auc": auc is not None and auc >= settings.min_auc,
        "max_brier": brier is not None and brier <= settings.max_brier,
    }
    passed: list[str] = []
    failed: list[str] = []
    (passed if checks["min_auc"] else failed).append(
        f"AUC {_fmt(auc)} {'≥' if checks['min_auc'] else 'is below'} the floor {settings.min_auc:.4f}"
    )
    (passed if checks["max_brier"] else failed).append(
        f"Brier {_fmt(brier)} {'≤' if checks['max_brier'] else 'is above'} the ceiling {settings.max_brier:.4f}"
    )

    if "baseline_auc" in candidate:
        baseline_auc = _metric(candidate, "baseline_auc")
        margin = None if auc is None or baseline_auc is None else auc - baseline_auc
        checks["baseline"] = margin is not None and margin >= settings.min_baseline_margin
        (passed if checks["baseline"] else failed).append(
            f"AUC margin {'missing' if margin is None else f'{margin:+.4f}'} over the plain baseline's "
            f"{_fmt(baseline_auc)} {'≥' if checks['baseline'] else 'is below'} the required "
            f"{settings.min_baseline_margin:.4f}"
        )

    if champion is None:
        checks["improvement"] = True
        passed.append("there is no champion to beat")
    else:
        champion_auc = _metric(champion, "auc")
        if champion_auc is None:
            # Fail closed: without the champion's AUC on this holdout there is no evidence of improvement.
            checks["improvement"] = False
            failed.append("cannot be compared with the champion, whose holdout AUC is missing")
        else:
            gain = None if auc is None else auc - champion_auc
            checks["improvement"] = gain is not None and gain >= settings.min_auc_improvement
            text = (
                f"AUC gain {'missing' if gain is None else f'{gain:+.4f}'} over the champion's "
                f"{champion_auc:.4f} {'≥' if checks['improvement'] else 'is below'} the required "
                f"{settings.min_auc_improvement:.4f}"
            )
            (passed if checks["improvement"] else failed).append(text)

    promote = all(checks.values())
    if promote:
        reason = "Promote: candidate " + _join(passed) + "."
    else:
        reason = "Refuse: candidate " + _join(failed) + (f" (passed: {_join(passed)})." if passed else ".")
    return GateDecision(promote=promote, reason=reason, checks=checks)


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
