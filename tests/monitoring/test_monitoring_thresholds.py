"""Thresholds learnt from the training window's month-to-month variation: seasons are not drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridops.monitoring.drift import DriftReference, feature_drift
from hybridops.monitoring.thresholds import fixed_thresholds, learn_thresholds
from hybridops.settings import MonitoringSettings

MONTHS = ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06"]


def _month(rng: np.random.Generator, month: str, temp_mean: float, n: int = 3000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "month_key": month,
            "temp": rng.normal(temp_mean, 5, n),  # seasonal: its mean walks with the months
            "humid": rng.normal(60, 10, n),  # stable
        }
    )


def _window(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.concat(
        [_month(rng, m, 30 + 3 * i) for i, m in enumerate(MONTHS)], ignore_index=True
    )  # 30, 33, ... 45 degrees


def test_a_seasonal_feature_gets_a_threshold_above_its_months_variation() -> None:
    window = _window()
    settings = MonitoringSettings()
    reference = DriftReference(window, ["temp", "humid"], settings.bins)
    learned = learn_thresholds(reference, window, settings)
    assert learned.source == "learned from 6 months"
    # every training month against the window, the largest times the factor
    month_psi = [
        reference.compare("temp", window.loc[window["month_key"] == m, "temp"])["psi"] for m in MONTHS
    ]
    assert learned.psi["temp"] == pytest.approx(settings.learned_threshold_factor * max(month_psi))
    assert learned.psi["temp"] > 2 * settings.psi_threshold  # the months differ by a season
    # the stable feature keeps the fixed floor
    assert learned.psi["humid"] == settings.psi_threshold and learned.ks["humid"] == settings.ks_threshold

    rng = np.random.default_rng(7)
    inside = _month(rng, "2013-07", 31)  # a month like January
    beyond = _month(rng, "2013-08", 80)  # far beyond anything the window saw
    beyond["humid"] += 10
    fixed_in = feature_drift(reference, inside, ["temp", "humid"], settings)
    learned_in = feature_drift(reference, inside, ["temp", "humid"], settings, learned)
    learned_out = feature_drift(reference, beyond, ["temp", "humid"], settings, learned)
    assert fixed_in.set_index("feature")["drifted"].to_dict() == {"temp": True, "humid": False}
    assert learned_in.set_index("feature")["drifted"].to_dict() == {"temp": False, "humid": False}
    assert learned_out.set_index("feature")["drifted"].to_dict() == {"temp": True, "humid": True}
    assert learned_in.set_index("feature").loc["temp", "psi_threshold"] == learned.psi["temp"]


def test_fixed_mode_one_month_and_a_missing_month_column() -> None:
    window = _window(1)
    reference = DriftReference(window, ["temp", "humid"], 10)
    fixed = MonitoringSettings(drift_thresholds="fixed", psi_threshold=0.3, ks_threshold=0.2)
    assert learn_thresholds(reference, window, fixed) == fixed_thresholds(["temp", "humid"], fixed)
    assert fixed_thresholds(["temp"], fixed).psi == {"temp": 0.3}
    one = window[window["month_key"] == "2013-01"]
    single = learn_thresholds(DriftReference(one, ["temp"], 10), one, MonitoringSettings())
    assert single.source == "fixed" and single.psi == {"temp": 0.2}
    with pytest.raises(ValueError, match="no 'month_key' column"):
        learn_thresholds(reference, window.drop(columns="month_key"), MonitoringSettings())


def test_the_factor_is_a_setting() -> None:
    window = _window(2)
    reference = DriftReference(window, ["temp"], 10)
    narrow = learn_thresholds(reference, window, MonitoringSettings(learned_threshold_factor=1.0))
    wide = learn_thresholds(reference, window, MonitoringSettings(learned_threshold_factor=3.0))
    assert wide.psi["temp"] == pytest.approx(3 * narrow.psi["temp"])
    assert wide.ks["temp"] <= 1.0
