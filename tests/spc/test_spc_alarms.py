"""One alarm per run of points and one per cause: runs_of, group_alarms and evaluate() on crafted storms."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridops.settings import SpcSettings
from hybridops.spc.alarms import ALARM_COLUMNS, group_alarms, runs_of
from hybridops.spc.charts import limits_from
from hybridops.spc.control import evaluate
from hybridops.spc.rules import western_electric

UNIT = limits_from(0.0, 1.0)


def test_a_long_run_on_one_side_is_one_rule4_run_with_its_start_and_end() -> None:
    z = np.array([-0.5, 0.5] * 4 + [0.5] * 13 + [-0.5])  # 14 points above (7 .. 20)
    found = [v for v in western_electric(z, UNIT) if v.rule == "rule4"]
    assert [v.index for v in found] == list(range(14, 21))  # per point: 7 firings
    runs = runs_of(found, z)
    assert len(runs) == 1
    (run,) = runs
    assert (run.rule, run.side, run.start, run.fired, run.end, run.firings) == (
        "rule4",
        "above",
        7,
        14,
        20,
        7,
    )


def test_rule2_windows_that_touch_are_one_run_and_apart_are_two() -> None:
    z = np.array([0, 2.5, 2.5, 2.5, 0, 0, 0, 0, 0, 0, 2.5, 0, 2.5, 0])
    found = [v for v in western_electric(z, UNIT) if v.rule == "rule2"]
    runs = runs_of(found, z)
    assert [(r.start, r.fired, r.end) for r in runs] == [(1, 2, 3), (10, 12, 12)]


def test_rule1_on_consecutive_days_is_one_run() -> None:
    z = np.array([0, 4, 5, 0, 4, 0, 0, 0, 4])
    runs = runs_of([v for v in western_electric(z, UNIT) if v.rule == "rule1"], z)
    assert [(r.start, r.end, r.firings) for r in runs] == [(1, 2, 2), (4, 4, 1), (8, 8, 1)]


def _runs(rows: list[tuple[str, str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"metric": m, "rule": r, "severity": sev, "day": pd.Timestamp(d), "start_day": pd.Timestamp(s),
             "end_day": pd.Timestamp(e), "detail": f"{m} {r}"}
            for m, r, sev, s, d, e in rows
        ]
    )  # fmt: skip


def test_one_cause_on_related_metrics_is_one_alarm_with_its_evidence() -> None:
    runs = _runs(
        [
            ("cancellation_rate", "rule1", "ERROR", "2013-02-08", "2013-02-08", "2013-02-09"),
            ("dep_delay_mean", "rule1", "ERROR", "2013-02-08", "2013-02-08", "2013-02-08"),
            ("arr_delay_null_rate", "rule1", "ERROR", "2013-02-09", "2013-02-09", "2013-02-09"),
            ("tailnum_null_rate", "rule1", "ERROR", "2013-02-11", "2013-02-11", "2013-02-11"),  # 2 days after
            (
                "cancellation_rate",
                "rule1",
                "ERROR",
                "2013-02-20",
                "2013-02-20",
                "2013-02-20",
            ),  # another cause
            ("weather_hours", "rule1", "ERROR", "2013-02-08", "2013-02-08", "2013-02-08"),  # another group
            ("dep_delay_mean", "rule4", "WARN", "2013-02-01", "2013-02-08", "2013-02-12"),  # WARN apart
        ]
    )
    groups = {
        "operations": ["cancellation_rate", "dep_delay_mean", "arr_delay_null_rate", "tailnum_null_rate"]
    }
    ids, alarms = group_alarms(runs, groups, 2, "2013-02", "r")
    assert list(alarms.columns) == ALARM_COLUMNS
    storm = alarms[alarms["alarm_id"] == "operations:ERROR:2013-02-08"].iloc[0]
    assert storm["metrics"] == "cancellation_rate, dep_delay_mean, arr_delay_null_rate, tailnum_null_rate"
    assert (storm["start_day"], storm["end_day"]) == (pd.Timestamp("2013-02-08"), pd.Timestamp("2013-02-11"))
    assert storm["evidence"].count(";") == 3 and storm["rules"] == "rule1"
    assert ids[:4] == ["operations:ERROR:2013-02-08"] * 4
    assert sorted(alarms["alarm_id"]) == [
        "operations:ERROR:2013-02-08",
        "operations:ERROR:2013-02-20",
        "operations:WARN:2013-02-01",
        "weather_hours:ERROR:2013-02-08",
    ]
    # with no gap allowed the tail-number run two days later is an alarm of its own
    _, strict = group_alarms(runs, groups, 0, "2013-02", "r")
    assert len(strict) == len(alarms) + 1


def _day_history(month_start: str, days: int, per_metric: dict[str, list[float]]) -> pd.DataFrame:
    index = pd.date_range(month_start, periods=days, freq="D")
    return pd.concat(
        [pd.DataFrame({"day": index, "metric": m, "value": v}) for m, v in per_metric.items()],
        ignore_index=True,
    )


def test_a_storm_in_evaluate_is_one_error_alarm_listing_every_metric() -> None:
    rng = np.random.default_rng(3)
    n = 59  # January and February
    flights = np.full(n, 1000.0)
    cancel = rng.uniform(0.005, 0.02, n)
    delay = rng.uniform(5, 15, n)
    storm = [38, 39]  # 8 and 9 February
    cancel[storm] = [0.5, 0.3]
    delay[storm] = [60.0, 45.0]
    hist = _day_history(
        "2013-01-01",
        n,
        {
            "flight_count": list(flights),
            "cancellation_rate": list(cancel),
            "dep_delay_null_rate": list(cancel + 0.001),
            "dep_delay_mean": list(delay),
        },
    )
    result = evaluate(hist, "2013-02", SpcSettings(), "r")
    rule1 = result.violations[result.violations["rule"] == "rule1"]
    assert set(rule1["metric"]) == {"cancellation_rate", "dep_delay_null_rate", "dep_delay_mean"}
    assert (rule1["start_day"].min(), rule1["end_day"].max()) == (
        pd.Timestamp("2013-02-08"),
        pd.Timestamp("2013-02-09"),
    )
    errors = result.alarms[result.alarms["severity"] == "ERROR"]
    assert len(errors) == 1 and result.error_count == 1
    assert set(errors["metrics"].iloc[0].split(", ")) == set(rule1["metric"])
    assert set(rule1["alarm_id"]) == {errors["alarm_id"].iloc[0]}
    # the p-chart limits of the rates stay in [0, 1]; the count's limits >= 0
    rates = result.points[result.points["metric"].isin(["cancellation_rate", "dep_delay_null_rate"])]
    assert (rates["lcl"] >= 0).all() and (rates["ucl"] <= 1).all() and (rates["lcl"] == 0).any()


def test_markdown_tables_show_every_day_of_a_run_and_one_line_per_alarm() -> None:
    from hybridops.spc.tables import alarms_markdown, control_chart_markdown

    # January alternates 10/12; February sits at 11.5 from the 3rd to the 14th (12 days above the centre)
    jan = [10.0 if i % 2 == 0 else 12.0 for i in range(31)]
    feb = [10.0, 12.0] + [11.5] * 12 + [10.0 if i % 2 == 0 else 12.0 for i in range(14)]
    hist = _day_history("2013-01-01", 59, {"m": jan + feb})
    result = evaluate(hist, "2013-02", SpcSettings(), "r")
    rule4 = result.violations[result.violations["rule"] == "rule4"]
    assert len(rule4) == 1
    assert (rule4["start_day"].iloc[0], rule4["day"].iloc[0], rule4["end_day"].iloc[0]) == (
        pd.Timestamp("2013-02-02"),  # 12 (above the centre 10.97) starts the 8 in a row
        pd.Timestamp("2013-02-09"),
        pd.Timestamp("2013-02-14"),
    )
    table = control_chart_markdown(result.points, "m", result.violations)
    marked = [line[2:12] for line in table.splitlines() if "rule4" in line]
    assert marked == [f"2013-02-{d:02d}" for d in range(2, 15)]

    lines = alarms_markdown(result.alarms).splitlines()
    assert lines[0] == "| raised | days | severity | metrics | rules | evidence |"
    assert len(lines) == 2 + len(result.alarms)
    assert any(line.startswith("| 2013-02-09 | 2013-02-02..2013-02-14 | WARN | m |") for line in lines)
    assert alarms_markdown(result.alarms.iloc[0:0]) == "No SPC alarm."
