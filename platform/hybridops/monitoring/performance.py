"""Real performance of a scored month once outcomes are known.

Joins ``predictions`` (``flight_id, delay_probability``) to outcomes (``flight_id, delayed_15`` and, when
present, ``cancelled``) and evaluates the flights whose outcome is known: not cancelled and ``delayed_15``
not null. Metrics:

* ``auc``: ROC AUC (``sklearn.metrics.roc_auc_score``); ``None`` with a ``note`` when the month has only one
  class (AUC is undefined) or no known outcome.
* ``logloss``: mean binary cross-entropy (``sklearn.metrics.log_loss`` with ``labels=[0, 1]``, so it is
  defined for a single-class month; probabilities clipped by sklearn).
* ``brier``: mean squared error of the probability, ``mean((p - y)^2)``.
* ``positive_rate``: share of flights actually delayed (>= 15 min); ``predicted_rate``: share predicted
  delayed (probability >= 0.5); ``mean_probability``: the mean predicted probability (calibration check
  against ``positive_rate``); ``rows``: flights evaluated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

DECISION_THRESHOLD = 0.5


def performance(predictions: pd.DataFrame, outcomes: pd.DataFrame) -> dict[str, Any]:
    """Metrics of the predictions on the flights with a known outcome (see the module docstring)."""
    for name, frame, needed in (
        ("predictions", predictions, ["flight_id", "delay_probability"]),
        ("outcomes", outcomes, ["flight_id", "delayed_15"]),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}")
    outcome_columns = ["flight_id", "delayed_15"] + (["cancelled"] if "cancelled" in outcomes.columns else [])
    joined = predictions[["flight_id", "delay_probability"]].merge(
        outcomes[outcome_columns].drop_duplicates("flight_id"), on="flight_id", how="inner"
    )
    known = joined["delayed_15"].notna()
    if "cancelled" in joined.columns:
        known &= ~joined["cancelled"].astype("boolean").fillna(False).astype(bool)
    joined = joined[known]
    y = joined["delayed_15"].astype("float64").to_numpy().astype("int64")
    p = joined["delay_probability"].astype("float64").to_numpy()
    result: dict[str, Any] = {
        "rows": len(joined),
        "auc": None,
        "logloss": None,
        "brier": None,
        "positive_rate": None,
        "predicted_rate": None,
        "mean_probability": None,
        "note": None,
    }
    if len(joined) == 0:
        result["note"] = "no flight with a known outcome: performance not computed"
        return result
    result["logloss"] = float(log_loss(y, p, labels=[0, 1]))
    result["brier"] = float(np.mean((p - y) ** 2))
    result["positive_rate"] = float(y.mean())
    result["predicted_rate"] = float((p >= DECISION_THRESHOLD).mean())
    result["mean_probability"] = float(p.mean())
    if len(np.unique(y)) < 2:
        label = "delayed" if y[0] == 1 else "on time"
        result["note"] = f"every known flight is {label}: ROC AUC is undefined for a single class"
    else:
        result["auc"] = float(roc_auc_score(y, p))
    return result
