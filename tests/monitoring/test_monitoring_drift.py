"""PSI and KS against hand computations and scipy; feature and prediction drift on crafted frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hybridops.monitoring.drift import (
    EPSILON,
    DriftReference,
    bin_edges,
    feature_drift,
    ks,
    prediction_drift,
    psi,
)
from hybridops.settings import MonitoringSettings, Settings


def test_psi_matches_a_hand_computation() -> None:
    # reference [1, 2, 3, 4], bins=2: one interior edge, the median 2.5 -> bins (-inf, 2.5], (2.5, inf), null.
    #   reference shares: [2/4, 2/4, 0]        current [1, 1, 1, 4]: [3/4, 1/4, 0]
    #   PSI = (0.75 - 0.5) ln(0.75/0.5) + (0.25 - 0.5) ln(0.25/0.5) + (eps - eps) ln(1)
    #       = 0.25 * 0.405465 + 0.25 * 0.693147 = 0.101366 + 0.173287 = 0.274653
    assert list(bin_edges([1, 2, 3, 4], bins=2)) == [2.5]
    assert psi([1, 2, 3, 4], [1, 1, 1, 4], bins=2) == pytest.approx(0.274653, abs=1e-6)
    expected = 0.25 * math.log(1.5) + 0.25 * math.log(2)
    assert psi([1, 2, 3, 4], [1, 1, 1, 4], bins=2) == pytest.approx(expected, rel=1e-12)


def test_psi_counts_nulls_as_a_bin_with_epsilon_for_empty_bins() -> None:
    # current [1, nan, 3, 4]: shares [1/4, 2/4, 1/4 null]; the reference's null bin is empty -> eps = 1e-4.
    #   PSI = (0.25 - 0.5) ln(0.5) + 0 + (0.25 - 1e-4) ln(0.25 / 1e-4)
    #       = 0.173287 + 0.2499 * 7.824046 = 0.173287 + 1.955229 = 2.128516
    assert psi([1, 2, 3, 4], [1, np.nan, 3, 4], bins=2) == pytest.approx(2.128516, abs=1e-6)
    assert EPSILON == 1e-4


def test_psi_zero_for_identical_and_large_for_shifted_samples() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 5000)
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    assert psi(reference, rng.normal(0, 1, 5000)) < 0.02  # same distribution, another sample
    assert psi(reference, reference + 2.0) > 1.0
    # values beyond the reference range land in the open-ended outer bins
    assert psi(reference, np.full(100, 1e6)) > 5


def test_psi_detects_a_change_in_missingness_only() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(10, 2, 4000)
    current = pd.Series(values.copy())
    current[: len(current) // 3] = np.nan  # same values, a third now missing
    assert psi(values, current) > 0.2
    assert ks(values, current)[0] < 0.05  # KS sees the non-null values only: unchanged distribution


def test_psi_deduplicates_edges_and_handles_integer_and_nullable_inputs() -> None:
    # 10 non-null values, 8 of them 0: the quartiles (positions 2.25, 4.5, 6.75) are all 0 -> one edge
    reference = pd.Series([0] * 8 + [5, 5, None], dtype="Int64")
    assert list(bin_edges(reference, bins=4)) == [0.0]
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(psi([], [1.0]))


def test_ks_equals_scipy_on_non_null_values() -> None:
    reference = [0.1, 0.4, 0.5, 0.9, np.nan, 1.3, 2.0]
    current = [0.6, 1.1, 1.7, np.nan, np.nan, 2.5]
    expected = stats.ks_2samp([0.1, 0.4, 0.5, 0.9, 1.3, 2.0], [0.6, 1.1, 1.7, 2.5])
    statistic, pvalue = ks(reference, current)
    assert statistic == pytest.approx(expected.statistic)
    assert pvalue == pytest.approx(expected.pvalue)
    assert statistic == pytest.approx(0.5)  # at x = 0.9: F_ref = 4/6, F_cur = 1/4 -> 0.4167; at 0.5: 3/6 - 0
    assert all(math.isnan(v) for v in ks([np.nan], [1.0]))


def _weather_frame(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "temp": rng.normal(40, 10, n),
            "humid": rng.uniform(20, 90, n),
            "carrier_flights_7d": rng.poisson(300, n).astype("int64"),
            "plane_seats": pd.array(rng.choice([50, 100, 150, 200], n), dtype="Int64"),
        }
    )


def test_feature_drift_flags_exactly_the_shifted_features() -> None:
    reference = _weather_frame(2)
    current = _weather_frame(3)
    current["temp"] = current["temp"] + 20
    current.loc[current.index[: len(current) // 2], "plane_seats"] = pd.NA  # missingness drift only
    features = ["temp", "humid", "carrier_flights_7d", "plane_seats"]
    out = feature_drift(reference, current, features, MonitoringSettings())
    assert list(out.columns) == [
        "feature", "psi", "ks_stat", "ks_pvalue", "ref_mean", "cur_mean", "ref_null_rate",
        "cur_null_rate", "psi_threshold", "ks_threshold", "drifted",
    ]  # fmt: skip
    assert out["feature"].tolist() == features
    drifted = out.set_index("feature")["drifted"].to_dict()
    assert drifted == {"temp": True, "humid": False, "carrier_flights_7d": False, "plane_seats": True}
    temp = out.set_index("feature").loc["temp"]
    assert temp["cur_mean"] - temp["ref_mean"] == pytest.approx(20, abs=1.0)
    assert temp["psi"] > 1 and temp["ks_stat"] > 0.5
    seats = out.set_index("feature").loc["plane_seats"]
    assert seats["ref_null_rate"] == 0 and seats["cur_null_rate"] == pytest.approx(0.5)
    # the whole Settings works as well as its monitoring section
    again = feature_drift(reference, current, features, Settings())
    pd.testing.assert_frame_equal(out, again)
    with pytest.raises(ValueError, match="wind_speed"):
        feature_drift(reference, current, ["temp", "wind_speed"], MonitoringSettings())


def test_feature_drift_thresholds_come_from_settings() -> None:
    reference = _weather_frame(4)
    current = _weather_frame(5)
    current["humid"] = current["humid"] + 3  # a small shift: below the default thresholds
    default = feature_drift(reference, current, ["humid"], MonitoringSettings())
    assert not default["drifted"].iloc[0]
    strict = feature_drift(
        reference, current, ["humid"], MonitoringSettings(psi_threshold=0.001, ks_threshold=0.01)
    )
    assert strict["drifted"].iloc[0]


def test_prediction_drift_reports_psi_ks_and_mean_shift() -> None:
    rng = np.random.default_rng(6)
    reference = rng.beta(2, 8, 4000)
    stable = prediction_drift(reference, rng.beta(2, 8, 4000), MonitoringSettings())
    assert not stable["drifted"] and abs(stable["mean_shift"]) < 0.01
    shifted = prediction_drift(reference, rng.beta(4, 6, 4000), MonitoringSettings())
    assert shifted["drifted"] and shifted["threshold"] == 0.2
    assert shifted["mean_shift"] == pytest.approx(0.4 - 0.2, abs=0.02)
    # the alert's threshold (monitoring.prediction_psi_threshold) decides, not the feature thresholds
    lenient = prediction_drift(
        reference, rng.beta(4, 6, 4000), MonitoringSettings(prediction_psi_threshold=50)
    )
    assert not lenient["drifted"] and lenient["threshold"] == 50
    assert set(shifted) >= {"psi", "ks_stat", "ks_pvalue", "ref_mean", "cur_mean", "mean_shift"}


def test_a_prepared_reference_gives_the_same_drift_as_the_frame() -> None:
    # Large samples take the asymptotic KS path (scipy's own for more than 10,000 values): same numbers.
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"a": rng.normal(0, 1, 30_000), "b": rng.poisson(3, 30_000).astype("float64")})
    reference.loc[reference.index[::50], "b"] = np.nan
    prepared = DriftReference(reference, ["a", "b"], MonitoringSettings().bins)
    for shift in (0.0, 0.03, 0.5):
        current = pd.DataFrame({"a": rng.normal(shift, 1, 12_000), "b": rng.poisson(3, 12_000)})
        direct = feature_drift(reference, current, ["a", "b"], MonitoringSettings())
        pd.testing.assert_frame_equal(
            feature_drift(prepared, current, ["a", "b"], MonitoringSettings()), direct, check_exact=True
        )
        # Both features' p-values come from one vectorized call; each equals scipy's own, ties included.
        for row, name in enumerate(["a", "b"]):
            expected = stats.ks_2samp(reference[name].dropna(), current[name])
            assert direct.loc[row, "ks_stat"] == expected.statistic
            assert direct.loc[row, "ks_pvalue"] == expected.pvalue
    with pytest.raises(ValueError, match="bins"):
        feature_drift(prepared, current, ["a"], MonitoringSettings(bins=5))


def test_the_vectorized_ks_path_is_checked_against_scipy_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy of ks_2samp's asymptotic path is compared with ks_2samp itself before its first use."""
    from hybridops.monitoring import drift

    drift.check_ks_against_scipy.cache_clear()
    statistic, pvalue = drift.check_ks_against_scipy()
    assert 0 < statistic < 0.1 and 0 < pvalue < 0.01  # a known answer in the range where p-values matter

    def unrounded(statistics, n1, n2):  # the effective size without scipy's rounding
        m, n = np.maximum(n1, n2).astype("float64"), np.minimum(n1, n2).astype("float64")
        return stats.kstwo.sf(statistics, m * n / (m + n) + 0.5)

    monkeypatch.setattr(drift, "_ks_pvalues", unrounded)
    drift.check_ks_against_scipy.cache_clear()
    reference = pd.DataFrame({"x": np.arange(12_000.0)})
    with pytest.raises(drift.DriftCheckError, match=r"scipy\.stats\.ks_2samp gives"):
        drift.DriftReference(reference, ["x"], 10).compare_all(
            pd.DataFrame({"x": np.arange(11_000.0)}), ["x"]
        )
    drift.check_ks_against_scipy.cache_clear()
