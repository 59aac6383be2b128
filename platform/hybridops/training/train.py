"""Deterministic LightGBM training of the flight-delay model and its evaluation.

The model's inputs are ``TrainingSet.features``: the Feast features and the request-time features
(``hybridops.features.request``), all float64; entity keys are not. The carrier, origin and destination
codes are LightGBM categoricals (``categorical_feature``, recorded in the model file, so every consumer's
float matrix is read as categories without being told). Training
is deterministic for the same data and settings: fixed ``seed``, ``deterministic=True``, a fixed number of
threads and row-wise histograms, no bagging and no early stopping, so two runs give the same trees, the
same metrics and byte-identical model files.

Metrics (scikit-learn): ROC AUC, log loss, Brier score and the expected calibration error over 10
equal-width bins of the predicted probability, ``ECE = sum_b (n_b / n) * |mean(p)_b - mean(y)_b|``; the
calibration table lists each non-empty bin's mean prediction, observed delay rate and count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from hybridops.errors import HybridopsError
from hybridops.features.request import categorical_features
from hybridops.settings import TrainingSettings

NUM_THREADS = 2
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Metrics:
    auc: float
    logloss: float
    brier: float
    ece: float
    calibration: list[tuple[float, float, int]]  # (mean predicted, observed rate, count) per bin
    rows: int
    positive_rate: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Scalar metrics, names prefixed (``holdout_auc``...)."""
        values = {
            "auc": self.auc,
            "logloss": self.logloss,
            "brier": self.brier,
            "ece": self.ece,
            "rows": float(self.rows),
            "positive_rate": self.positive_rate,
        }
        return {f"{prefix}{name}": value for name, value in values.items()}


@dataclass(frozen=True)
class TrainedModel:
    booster: lgb.Booster
    features: list[str]
    params: dict[str, Any]
    num_boost_round: int
    train_metrics: Metrics
    holdout_metrics: Metrics
    extra: dict[str, Any] = field(default_factory=dict)


def lgb_params(settings: TrainingSettings) -> dict[str, Any]:
    """Every LightGBM parameter the model is trained with (logged as run parameters)."""
    return {
        "objective": "binary",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_data_in_leaf": 20,
        "max_bin": settings.max_bin,
        "feature_fraction": 1.0,
        "bagging_fraction": 1.0,
        "bagging_freq": 0,
        "seed": settings.seed,
        "deterministic": True,
        "num_threads": NUM_THREADS,
        "force_row_wise": True,
        "verbosity": -1,
    }


def dataset_params(settings: TrainingSettings) -> dict[str, Any]:
    """The parameters a training Dataset is binned with, before :func:`lgb_params` trains on it.

    One thread, and the Dataset constructed before training: LightGBM finds each feature's bins on
    OpenMP worker threads, and a worker thread's log level is its own, not set by ``verbosity``, so a
    multi-threaded construction prints the "sparse categorical values" warning of the base-36 codes on
    the user's terminal however quiet the parameters are. The bins do not depend on the thread count; they do
    depend on the training parameters (``seed`` picks the rows the bins are found on), so all of them are here.
    """
    return {**lgb_params(settings), "num_threads": 1}


def _matrix(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise HybridopsError(f"frame lacks feature columns {missing}")
    return frame[features].astype("float64")


def predict(booster: lgb.Booster, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Predicted delay probability of each row."""
    return np.asarray(booster.predict(_matrix(frame, features), num_threads=NUM_THREADS), dtype="float64")


def calibration_table(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) of each non-empty equal-width probability bin."""
    index = np.clip((probabilities * bins).astype("int64"), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        if count:
            table.append((float(probabilities[mask].mean()), float(labels[mask].mean()), count))
    return table


def evaluate(booster: lgb.Booster, frame: pd.DataFrame, features: list[str]) -> Metrics:
    """Metrics of ``booster`` on the rows of ``frame`` (needs a ``label`` column).

    AUC is NaN when the frame holds only one class.
    """
    if frame.empty:
        raise HybridopsError("cannot evaluate a model on an empty frame")
    return metrics_of(frame["label"].astype("int64").to_numpy(), predict(booster, frame, features))


def metrics_of(labels: np.ndarray, probabilities: np.ndarray) -> Metrics:
    """Metrics of predicted ``probabilities`` against 0/1 ``labels`` (AUC is NaN for a single class)."""
    table = calibration_table(labels, probabilities)
    rows = len(labels)
    ece = sum(count / rows * abs(mean_p - observed) for mean_p, observed, count in table)
    both_classes = len(np.unique(labels)) == 2
    return Metrics(
        auc=float(roc_auc_score(labels, probabilities)) if both_classes else math.nan,
        logloss=float(log_loss(labels, probabilities, labels=[0, 1])),
        brier=float(brier_score_loss(labels, probabilities, pos_label=1)),
        ece=float(ece),
        calibration=table,
        rows=rows,
        positive_rate=float(labels.mean()),
    )


def train_model(
    train: pd.DataFrame, holdout: pd.DataFrame, features: list[str], settings: TrainingSettings
) -> TrainedModel:
    """Train a binary LightGBM Booster on ``train[features]`` and evaluate it on train and holdout.

    Raises:
        HybridopsError: an empty split or a training split with a single class.
    """
    if train.empty or holdout.empty:
        raise HybridopsError(
            f"cannot train: {len(train)} training rows and {len(holdout)} holdout rows; check the split"
        )
    if train["label"].nunique() < 2:
        raise HybridopsError("cannot train: the training months hold only one label class")
    params = lgb_params(settings)
    labels = train["label"].astype("int64").to_numpy()
    dataset = lgb.Dataset(
        _matrix(train, features),
        label=labels,
        feature_name=list(features),
        # A code's number says nothing about its delays: ordered splits on it (UA < US) would be noise.
        categorical_feature=categorical_features(features),
        params=dataset_params(settings),
        free_raw_data=False,
    ).construct()
    # Kept as the training booster, it still holds its scores of the training rows: the train metrics
    # need no second pass over them (the same probabilities as predict, to the bit).
    booster = lgb.train(params, dataset, num_boost_round=settings.num_boost_round, keep_training_booster=True)
    train_metrics = metrics_of(labels, _training_scores(booster))
    booster.free_dataset()
    return TrainedModel(
        booster=booster,
        features=list(features),
        params=params,
        num_boost_round=settings.num_boost_round,
        train_metrics=train_metrics,
        holdout_metrics=evaluate(booster, holdout, features),
    )


def _training_scores(booster: lgb.Booster) -> np.ndarray:
    """The booster's probabilities for its own training rows, as LightGBM kept them while training."""
    scores: list[np.ndarray] = []

    def capture(predictions: np.ndarray, _data: lgb.Dataset) -> tuple[str, float, bool]:
        scores.append(np.asarray(predictions, dtype="float64"))
        return "captured", 0.0, True

    booster.eval_train(feval=capture)
    return scores[0]
