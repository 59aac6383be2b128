"""Deterministic LightGBM training and the evaluation metrics."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from hybridops.errors import HybridopsError
from hybridops.features.request import CATEGORICAL_REQUEST_FEATURES
from hybridops.settings import TrainingSettings
from hybridops.training.train import calibration_table, evaluate, lgb_params, train_model


def _file_sha(booster: lgb.Booster, path: Path) -> str:
    booster.save_model(str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_is_reproducible(synthetic_split: dict[str, Any], tmp_path: Path) -> None:
    s = synthetic_split
    first = train_model(s["train"], s["holdout"], s["set"].features, s["settings"])
    second = train_model(s["train"], s["holdout"], s["set"].features, s["settings"])
    assert first.holdout_metrics == second.holdout_metrics  # exact equality, calibration table included
    assert first.train_metrics == second.train_metrics
    assert _file_sha(first.booster, tmp_path / "a.lgb") == _file_sha(second.booster, tmp_path / "b.lgb")

    reseeded = TrainingSettings(**{**s["settings"].model_dump(), "seed": 7, "num_leaves": 7})
    other = train_model(s["train"], s["holdout"], s["set"].features, reseeded)
    assert other.booster.model_to_string() != first.booster.model_to_string()


def test_train_metrics_from_training_scores_equal_a_prediction_pass(synthetic_split: dict[str, Any]) -> None:
    # The train metrics come from the scores LightGBM kept while training, not from predicting again.
    s = synthetic_split
    trained = train_model(s["train"], s["holdout"], s["set"].features, s["settings"])
    assert trained.train_metrics == evaluate(trained.booster, s["train"], s["set"].features)


def test_model_learns_the_planted_signal(synthetic_split: dict[str, Any]) -> None:
    s = synthetic_split
    trained = train_model(s["train"], s["holdout"], s["set"].features, s["settings"])
    holdout = trained.holdout_metrics
    assert trained.booster.feature_name() == s["set"].features  # Feast features only, no entity keys
    assert trained.params["deterministic"] is True and trained.params["num_threads"] == 2
    assert trained.params["seed"] == 42 and trained.params["objective"] == "binary"
    assert holdout.rows == len(s["holdout"]) and trained.train_metrics.rows == len(s["train"])
    assert holdout.auc > 0.6  # delays depend on the observed precipitation and the carrier
    assert 0 < holdout.brier < 0.25 and 0 <= holdout.ece < 0.2
    assert sum(count for *_, count in holdout.calibration) == holdout.rows
    assert holdout.positive_rate == pytest.approx(s["holdout"]["label"].mean())
    importance = dict(
        zip(trained.booster.feature_name(), trained.booster.feature_importance("gain"), strict=True)
    )
    # The planted signal: the precipitation leads, unless the plane's turn does (a plane whose previous
    # flight left late in the same rain has a shorter gap to this one: the same rain seen through it).
    ranked = sorted(importance, key=importance.__getitem__, reverse=True)
    assert "precip" in ranked[:2] and set(ranked[:2]) <= {"precip", "tail_minutes_since_departure"}, ranked[
        :4
    ]


def test_evaluate_on_a_hand_made_frame() -> None:
    # A one-feature booster that predicts close to the training rate of each x; check the metric formulas.
    rng = np.random.default_rng(0)
    x = rng.uniform(size=2000)
    y = (rng.uniform(size=2000) < x).astype(int)
    frame = pd.DataFrame({"x": x, "label": y})
    params = {**lgb_params(TrainingSettings()), "num_leaves": 4}
    booster = lgb.train(params, lgb.Dataset(frame[["x"]], label=y), num_boost_round=20)
    metrics = evaluate(booster, frame, ["x"])
    p = booster.predict(frame[["x"]])
    assert metrics.auc == pytest.approx(roc_auc_score(y, p))
    assert metrics.brier == pytest.approx(np.mean((p - y) ** 2))
    assert metrics.logloss == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    ece = sum(abs(mp - obs) * n for mp, obs, n in metrics.calibration) / len(y)
    assert metrics.ece == pytest.approx(ece)
    assert metrics.rows == 2000 and metrics.positive_rate == pytest.approx(y.mean())

    one_class = evaluate(booster, frame[frame["label"] == 1], ["x"])
    assert math.isnan(one_class.auc) and one_class.positive_rate == 1.0


def test_calibration_table_bins() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([0.05, 0.15, 0.12, 0.95, 1.0])
    assert calibration_table(labels, probabilities) == [
        (0.05, 0.0, 1),
        (pytest.approx(0.135), 0.5, 2),
        (pytest.approx(0.975), 1.0, 2),  # p = 1.0 falls in the last bin
    ]


def test_training_refuses_empty_or_single_class_splits(synthetic_split: dict[str, Any]) -> None:
    s = synthetic_split
    features = s["set"].features
    with pytest.raises(HybridopsError, match="0 holdout rows"):
        train_model(s["train"], s["holdout"].iloc[0:0], features, s["settings"])
    negatives = s["train"][s["train"]["label"] == 0]
    with pytest.raises(HybridopsError, match="one label class"):
        train_model(negatives, s["holdout"], features, s["settings"])


def _coded_frame(rows: int = 20_000) -> tuple[pd.DataFrame, list[str]]:
    """Carrier and airport codes as the model sees them: base-36 numbers, sparse categories to LightGBM (its
    warning: the largest value over 100 exceeds the number of distinct values), and one number."""
    rng = np.random.default_rng(7)
    letters = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    pools = {
        "carrier_code": ["".join(rng.choice(letters, 2)) for _ in range(16)],
        "origin_code": ["EWR", "JFK", "LGA"],
        "dest_code": ["".join(rng.choice(letters, 3)) for _ in range(100)],
    }
    assert sorted(pools) == sorted(CATEGORICAL_REQUEST_FEATURES)
    frame = pd.DataFrame(
        {name: [float(int(code, 36)) for code in rng.choice(pool, rows)] for name, pool in pools.items()}
    )
    frame["x"] = rng.normal(size=rows)
    frame["label"] = (rng.uniform(size=rows) < 1 / (1 + np.exp(-frame["x"]))).astype("int64")
    return frame, [*pools, "x"]


def test_training_prints_nothing_and_bins_as_lightgbm_does(capfd: pytest.CaptureFixture[str]) -> None:
    """LightGBM finds the bins on OpenMP worker threads, whose log level ignores ``verbosity``: a feature binned
    on a worker prints the sparse categories warning of the base-36 codes (which feature lands on a worker
    varies, hence the tries). Training bins on one thread, with the training parameters, so it is silent and
    grows the trees of LightGBM's own multi-threaded construction."""
    frame, features = _coded_frame()
    settings = TrainingSettings(num_boost_round=5)
    params = lgb_params(settings)
    categorical = features[:-1]
    printed = ""
    for _ in range(40):
        plain = lgb.train(
            params,
            lgb.Dataset(
                frame[features], label=frame["label"], categorical_feature=categorical, free_raw_data=False
            ),
            num_boost_round=settings.num_boost_round,
        )
        printed += capfd.readouterr().out
        if printed:
            break
    assert "[LightGBM] [Warning] Met categorical feature which contains sparse values" in printed

    def trees(booster: lgb.Booster) -> str:
        return booster.model_to_string().split("end of trees")[0]

    for _ in range(10):
        trained = train_model(frame, frame.head(1_000), features, settings)
        assert "[LightGBM]" not in "".join(capfd.readouterr())
        assert trees(trained.booster) == trees(plain)
