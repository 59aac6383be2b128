"""evaluate(): baseline selection, month filtering, runs across a month boundary, severities."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from hybridops.settings import SpcSettings
from hybridops.spc.charts import individuals_limits
from hybridops.spc.control import POINT_COLUMNS, VIOLATION_COLUMNS, evaluate
from hybridops.spc.tables import control_chart_markdown


def history(metric: str, start: str, values: list[float]) -> pd.DataFrame:
    days = pd.date_range(start, periods=len(values), freq="D")
    return pd.DataFrame(
        {
            "month_key": [d.strftime("%Y-%m") for d in days],
            "day": days,
            "metric": metric,
            "value": [float(v) for v in values],
        }
    )


def alternating(n: int, low: float = 10.0, high: float = 12.0) -> list[float]:
    return [low if i % 2 == 0 else high for i in range(n)]


def test_full_baseline_from_the_baseline_window() -> None:
    jan = alternating(31)
    feb = [11.0] * 28
    hist = pd.concat([history("m", "2013-01-01", jan), history("m", "2013-02-01", feb)])
    result = evaluate(hist, "2013-02", SpcSettings(), "run-1")

    expected = individuals_limits(jan, sigma=3.5)  # mean 340/31, MR_bar 2, sigma_hat 2/1.128
    assert result.limits["m"] == expected
    assert result.baselines == {"m": "full"}
    assert result.provisional_metrics == [] and result.notes == []
    assert list(result.points.columns) == POINT_COLUMNS
    assert len(result.points) == 28
    assert (result.points["month_key"] == "2013-02").all()
    assert (result.points["baseline"] == "full").all()
    assert result.points["center"].tolist() == pytest.approx([340 / 31] * 28)
    assert result.points["ucl"].iloc[0] == pytest.approx(340 / 31 + 3.5 * 2 / 1.128)  # settings.sigma


def test_provisional_baseline_when_the_window_is_short() -> None:
    # 7 points in the January window (< 8): February is charted against itself
    hist = pd.concat(
        [history("m", "2013-01-25", alternating(7)), history("m", "2013-02-01", [1.0, 2.0, 4.0, 3.0])]
    )
    result = evaluate(hist, "2013-02", SpcSettings(), "run-1")
    assert result.baselines == {"m": "provisional"}
    assert result.provisional_metrics == ["m"]
    assert any("provisional" in note and note.startswith("m:") for note in result.notes)
    assert (result.points["baseline"] == "provisional").all()
    # mean 2.5, moving ranges 1, 2, 1 -> MR_bar 4/3
    assert result.limits["m"].center == pytest.approx(2.5)
    assert result.limits["m"].sigma_hat == pytest.approx((4 / 3) / 1.128)


def test_eight_window_points_are_enough() -> None:
    hist = pd.concat(
        [history("m", "2013-01-24", alternating(8)), history("m", "2013-02-01", [1.0, 2.0, 4.0, 3.0])]
    )
    result = evaluate(hist, "2013-02", SpcSettings(), "run-1")
    assert result.baselines == {"m": "full"}
    assert result.limits["m"].center == pytest.approx(11.0)


def test_no_baseline_window_data_at_all_is_provisional() -> None:
    hist = history("m", "2013-05-01", alternating(31))
    result = evaluate(hist, "2013-05", SpcSettings(), "run-1")
    assert result.baselines == {"m": "provisional"}
    assert result.limits["m"].center == pytest.approx(individuals_limits(alternating(31)).center)


def test_single_point_without_baseline_is_insufficient() -> None:
    result = evaluate(history("m", "2013-05-01", [3.0]), "2013-05", SpcSettings(), "run-1")
    assert result.baselines == {"m": "insufficient"}
    assert "m" not in result.limits
    assert len(result.points) == 1 and math.isnan(result.points["ucl"].iloc[0])
    assert result.violations.empty


def test_only_violations_of_the_month_are_reported() -> None:
    jan = alternating(31)
    feb = alternating(28)
    mar = alternating(31)
    jan[20] = 30.0  # rule1 in January
    feb[9] = 30.0  # rule1 on 2013-02-10
    mar[0] = 30.0  # rule1 in March
    hist = pd.concat(
        [
            history("m", "2013-01-01", jan),
            history("m", "2013-02-01", feb),
            history("m", "2013-03-01", mar),
        ]
    )
    result = evaluate(hist, "2013-02", SpcSettings(), "run-7")
    v = result.violations
    assert list(v.columns) == VIOLATION_COLUMNS
    rule1 = v[v["rule"] == "rule1"]
    assert rule1["day"].tolist() == [pd.Timestamp("2013-02-10")]
    assert rule1["value"].tolist() == [30.0]
    assert rule1["side"].tolist() == ["above"]
    assert (v["month_key"] == "2013-02").all()
    assert (v["run_id"] == "run-7").all()
    assert v["day"].between(pd.Timestamp("2013-02-01"), pd.Timestamp("2013-02-28")).all()
    assert result.points["day"].min() == pd.Timestamp("2013-02-01")
    assert result.points["day"].max() == pd.Timestamp("2013-02-28")


def test_run_across_the_month_boundary_is_reported_where_it_completes() -> None:
    # Baseline December 2012 (30 days alternating 10/12): centre 11, sigma_hat 2/1.128 = 1.773.
    # January alternates 10/12 until Jan 25 (10, below centre); Jan 26..31 and Feb 1..2 are 11.5
    # (above the centre, inside 1 sigma): the 8th consecutive point above is 2013-02-02.
    settings = SpcSettings(baseline="fixed", baseline_start=date(2012, 12, 1), baseline_days=30)
    jan = alternating(25) + [11.5] * 6
    feb = [11.5, 11.5, *alternating(26)]
    hist = pd.concat(
        [
            history("m", "2012-12-01", alternating(30)),
            history("m", "2013-01-01", jan),
            history("m", "2013-02-01", feb),
        ]
    )
    assert evaluate(hist, "2013-01", settings, "r").violations.empty

    result = evaluate(hist, "2013-02", settings, "r")
    assert result.limits["m"].center == pytest.approx(11.0)
    v = result.violations
    assert v[["day", "rule", "side"]].values.tolist() == [[pd.Timestamp("2013-02-02"), "rule4", "above"]]
    assert "2013-01-26" in v["detail"].iloc[0]
    # February alone (no history before it) shows no run
    feb_only = evaluate(hist[hist["day"] >= "2013-02-01"], "2013-02", settings, "r")
    assert not (feb_only.violations["rule"] == "rule4").any()


def test_severities_come_from_settings() -> None:
    jan = alternating(31)
    feb = [*alternating(19), 10.0] + [11.5] * 8  # Feb 21..28 above 10.97: rule4 on Feb 28
    feb[3] = 30.0  # rule1 on Feb 4
    hist = pd.concat([history("m", "2013-01-01", jan), history("m", "2013-02-01", feb)])

    def severities(settings: SpcSettings) -> dict[str, str]:
        v = evaluate(hist, "2013-02", settings, "r").violations
        return dict(zip(v["rule"], v["severity"], strict=True))

    # the 11.5 run also drifts the EWMA above its limit
    assert severities(SpcSettings()) == {"rule1": "ERROR", "rule4": "WARN", "ewma": "WARN"}
    custom = SpcSettings(rule_severity={"rule1": "WARN", "rule4": "ERROR", "ewma": "ERROR"})
    assert severities(custom) == {"rule1": "WARN", "rule4": "ERROR", "ewma": "ERROR"}
    # a rule missing from the mapping is a warning
    assert severities(SpcSettings(rule_severity={"rule1": "ERROR"}))["rule4"] == "WARN"
    mapped = evaluate(hist, "2013-02", custom, "r").violations
    assert mapped.loc[mapped["rule"] == "rule4", "day"].tolist() == [pd.Timestamp("2013-02-28")]


def test_constant_metric_only_checks_the_exact_centre() -> None:
    # a null rate that was 0 on every baseline day: any other value is a rule1 violation, nothing else
    hist = pd.concat(
        [history("null_rate", "2013-01-01", [0.0] * 31), history("null_rate", "2013-02-01", [0.0] * 28)]
    )
    hist.loc[hist["day"] == "2013-02-05", "value"] = 0.001
    result = evaluate(hist, "2013-02", SpcSettings(), "r")
    assert result.limits["null_rate"].sigma_hat == 0.0
    v = result.violations
    assert v[["day", "rule", "severity"]].values.tolist() == [[pd.Timestamp("2013-02-05"), "rule1", "ERROR"]]
    assert "constant" in v["detail"].iloc[0]


def test_duplicates_and_nans_in_history() -> None:
    hist = pd.concat(
        [
            history("m", "2013-01-01", alternating(30)),
            history("m", "2013-01-05", [99.0]),  # a later row for the same day wins
            history("m", "2013-01-31", [float("nan")]),  # NaN values are not points
        ]
    )
    result = evaluate(hist, "2013-01", SpcSettings(), "r")
    assert len(result.points) == 30
    assert result.points.loc[result.points["day"] == "2013-01-05", "value"].tolist() == [99.0]
    assert result.points["day"].max() == pd.Timestamp("2013-01-30")


def test_empty_history() -> None:
    empty = pd.DataFrame({"month_key": [], "day": pd.to_datetime([]), "metric": [], "value": []})
    result = evaluate(empty, "2013-01", SpcSettings(), "r")
    assert result.points.empty and result.violations.empty and result.limits == {}
    assert list(result.points.columns) == POINT_COLUMNS
    assert list(result.violations.columns) == VIOLATION_COLUMNS


def test_control_chart_markdown() -> None:
    jan = alternating(31)
    feb = alternating(28)
    feb[9] = 30.0
    hist = pd.concat([history("m", "2013-01-01", jan), history("m", "2013-02-01", feb)])
    result = evaluate(hist, "2013-02", SpcSettings(), "r")

    table = control_chart_markdown(result.points, "m", result.violations)
    lines = table.splitlines()
    assert lines[0] == "| day | value | centre | LCL | UCL | signal |"
    assert len(lines) == 2 + 28
    flagged = [line for line in lines if "✗" in line]
    assert len(flagged) >= 1 and flagged[0].startswith("| 2013-02-10 | 30 |")
    assert "rule1" in flagged[0]

    plain = control_chart_markdown(result.points, "m")
    assert [line for line in plain.splitlines() if "✗" in line] == [
        line for line in plain.splitlines() if line.startswith("| 2013-02-10")
    ]
    assert control_chart_markdown(result.points, "other").count("\n") == 1


def test_a_trailing_baseline_follows_the_seasons_a_fixed_one_does_not() -> None:
    # January around 10, May and June around 19 (alternating +/-1): a seasonal level shift, no special cause.
    hist = pd.concat(
        [
            history("m", "2013-01-01", [v - 9 for v in alternating(31, 18.0, 20.0)]),
            history("m", "2013-05-01", alternating(31, 18.0, 20.0)),
            history("m", "2013-06-01", alternating(30, 18.0, 20.0)),
        ]
    )
    fixed = evaluate(hist, "2013-06", SpcSettings(baseline="fixed"), "r")
    assert fixed.limits["m"].center == pytest.approx(10.0, abs=0.1)
    # from May on every day is beyond January's limits, for good: one rule1 run, raised in May, not one
    # alarm per day, and not raised again in June (a note says it goes on)
    may = evaluate(hist, "2013-05", SpcSettings(baseline="fixed"), "r")
    rule1 = may.violations[may.violations["rule"] == "rule1"]
    assert len(rule1) == 1
    assert (rule1["start_day"].iloc[0], rule1["end_day"].iloc[0]) == (
        pd.Timestamp("2013-05-01"),
        pd.Timestamp("2013-05-31"),
    )
    assert "31 points completed the pattern" in rule1["detail"].iloc[0]
    assert (fixed.violations["rule"] == "rule1").sum() == 0
    assert any("rule1 run raised on 2013-05-01 goes on to 2013-06-30" in note for note in fixed.notes)

    trailing = evaluate(hist, "2013-06", SpcSettings(), "r")  # limits from the 31 days before June: May
    assert trailing.limits["m"].center == pytest.approx(19.0, abs=0.1)
    assert trailing.violations.empty and set(trailing.baselines.values()) == {"full"}


def test_chart_only_metrics_are_charted_but_never_violate() -> None:
    hist = pd.concat(
        [history(m, "2013-01-01", alternating(31)) for m in ("weather_temp_mean", "flight_count")]
        + [history(m, "2013-02-01", [30.0] * 28) for m in ("weather_temp_mean", "flight_count")]
    )
    result = evaluate(hist, "2013-02", SpcSettings(), "r")
    assert set(result.violations["metric"]) == {"flight_count"}  # the same shift in the weather: no rule
    weather = result.points[result.points["metric"] == "weather_temp_mean"]
    assert len(weather) == 28 and weather["ucl"].notna().all()  # still charted against its limits
    judged = evaluate(hist, "2013-02", SpcSettings(chart_only_metrics=[]), "r")
    assert set(judged.violations["metric"]) == {"flight_count", "weather_temp_mean"}


def test_travel_holidays_are_charted_but_not_judged_for_the_flight_count() -> None:
    # A steady weekly count, then Independence Day 2013 (a Thursday) and its Friday at 70 %, and a
    # delay spike the same Thursday: the count's dip is the schedule's, the delays are a fault.
    days = pd.date_range("2013-06-01", "2013-07-31", freq="D")
    count = [700.0 if d.dayofweek == 5 else 900.0 + (d.day % 3) for d in days]
    delay = [10.0 + (d.day % 4) for d in days]
    for i, d in enumerate(days):
        if d.date() in (date(2013, 7, 4), date(2013, 7, 5)):
            count[i] *= 0.7
        if d.date() == date(2013, 7, 4):
            delay[i] = 60.0
    hist = pd.concat(
        [history("flight_count", "2013-06-01", count), history("dep_delay_mean", "2013-06-01", delay)]
    )
    result = evaluate(hist, "2013-07", SpcSettings(), "r")
    assert "flight_count" not in set(result.violations["metric"])
    assert set(result.violations["metric"]) == {"dep_delay_mean"}  # judged on the holiday
    assert any("2013-07-04, 2013-07-05 charted, not judged" in n for n in result.notes)
    points = result.points[result.points["metric"] == "flight_count"]
    assert len(points) == 31 and points["lcl"].notna().all()  # the holidays are still charted
    every_day = evaluate(hist, "2013-07", SpcSettings(holiday_calendar="none"), "r")
    flagged = every_day.violations[every_day.violations["metric"] == "flight_count"]
    assert date(2013, 7, 4) in {d.date() for d in flagged["day"]}
    assert {d.date() for d in flagged["day"]} <= {date(2013, 7, 4), date(2013, 7, 5)}
    assert (flagged["side"] == "below").all()
