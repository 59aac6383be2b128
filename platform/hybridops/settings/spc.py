"""Settings of statistical process control over the data metrics (``spc``)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from hybridops.settings.section import _Section

Severity = Literal["ERROR", "WARN"]


class SpcSettings(_Section):
    """Statistical process control of the data metrics."""

    baseline: Literal["trailing", "fixed"] = Field(
        "trailing",
        description=(
            "Where centre lines and limits come from. trailing: the baseline_days days before each charted "
            "month, so limits follow the seasons (the first month, with nothing before it, is charted "
            "against itself); fixed: baseline_days days from baseline_start, one set of limits for every "
            "month (a seasonal metric then leaves them for good)."
        ),
    )
    baseline_start: date = Field(
        date(2013, 1, 1), description="First day of the baseline window (with baseline: fixed)."
    )
    baseline_days: int = Field(
        31, ge=8, description="Days in the baseline window that fixes centre lines and limits."
    )
    sigma: float = Field(
        3.5,
        gt=0,
        description=(
            "Control limits (rule1, ERROR) at centre +/- sigma * the chart's sigma; the 1 and 2 sigma zones "
            "of rules 2-3 do not move. 3.5 rather than 3: six judged metrics a day make 2,190 points a year, "
            "and daily delays and cancellations have heavier tails than a normal; measured in docs/spc.md "
            "(3.0: 24 ERROR alarms over 2013, 3.5: 20, both catch the February blizzard)."
        ),
    )
    ewma_lambda: float = Field(0.2, gt=0, le=1, description="Smoothing weight of the EWMA chart.")
    ewma_width: float = Field(
        3.0,
        gt=0,
        description="L of the EWMA limits: centre +/- L * sigma_hat * sqrt(lam/(2-lam) * (1-(1-lam)^(2i))).",
    )
    min_baseline_points: int = Field(
        8,
        ge=2,
        description=(
            "A metric with fewer points in the baseline window is charted against its own month "
            "(a provisional baseline)."
        ),
    )
    chart_only_metrics: list[str] = Field(
        default_factory=lambda: [
            "weather_temp_mean",
            "weather_wind_speed_mean",
            "weather_precip_total",
            "weather_visib_mean",
            "weather_hours",
        ],
        description=(
            "Metrics charted (points, centre line, limits) but not judged by the rules: the weather is not "
            "a process under control, and its autocorrelated daily means (fronts, heat waves) leave any "
            "limits for days at a time; its data problems are the quality checks' (ranges, nulls, and "
            "weather_hours_complete for the hours, whose normal value is a constant 72)."
        ),
    )
    rule_severity: dict[str, Severity] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "rule1": "ERROR",
            "rule2": "WARN",
            "rule3": "WARN",
            "rule4": "WARN",
            "ewma": "WARN",
        },
        description="Severity of each Western Electric rule (rule1..rule4) and of the EWMA chart.",
    )
    p_chart: Literal["laney", "binomial"] = Field(
        "laney",
        description=(
            "Limits of the rates' p-charts. binomial: p_bar +/- sigma * sqrt(p_bar (1 - p_bar) / n) with n "
            "the day's flights; laney: the same widened by the day-to-day spread of the baseline's z-scores "
            "(never narrower), because weather moves every flight of a day at once."
        ),
    )
    groups: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "operations": [
                "flight_count",
                "cancellation_rate",
                "dep_delay_mean",
                "dep_delay_null_rate",
                "arr_delay_null_rate",
                "tailnum_null_rate",
            ],
            "weather_feed": [
                "weather_hours",
                "weather_temp_mean",
                "weather_wind_speed_mean",
                "weather_precip_total",
                "weather_visib_mean",
            ],
        },
        description=(
            "Related metrics: their runs on overlapping days (or at most group_gap_days apart) are one "
            "alarm listing every metric and its evidence (a storm: cancellations, delays, null rates)."
        ),
    )
    group_gap_days: int = Field(
        2,
        ge=0,
        description=(
            "Days between two runs of one group that still make them one alarm (a weather episode: ice one "
            "day, snow two days later)."
        ),
    )
    holiday_calendar: Literal["us_travel", "none"] = Field(
        "us_travel",
        description=(
            "Days on which calendar_metrics are charted but not judged by the rules. us_travel: the "
            "big US travel holidays and their long weekends (hybridops.spc.calendar), when airlines fly a "
            "reduced schedule published months ahead (in 2013 four ERROR alarms of the flight count, "
            "docs/spc.md); none: every day is judged."
        ),
    )
    calendar_metrics: list[str] = Field(
        default_factory=lambda: ["flight_count"],
        description=(
            "Metrics the holiday calendar applies to: counts a holiday lowers by design. Rates and delays "
            "are judged every day (a holiday storm is still caught)."
        ),
    )
