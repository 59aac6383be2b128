"""The travel-holiday calendar the flight count's chart leaves unjudged."""

from __future__ import annotations

from datetime import date

from hybridops.spc.calendar import holiday_days


def test_the_2013_travel_holidays() -> None:
    days = holiday_days(date(2013, 1, 1), date(2013, 12, 31))
    assert sorted(days) == [
        date(2013, 1, 1),
        date(2013, 5, 25),  # Memorial Day weekend: Saturday, Sunday, Monday (May 27)
        date(2013, 5, 26),
        date(2013, 5, 27),
        date(2013, 7, 4),  # a Thursday: Friday is the bridge day
        date(2013, 7, 5),
        date(2013, 8, 31),  # Labor Day weekend (September 2)
        date(2013, 9, 1),
        date(2013, 9, 2),
        date(2013, 11, 28),  # Thanksgiving, the Friday and Saturday after
        date(2013, 11, 29),
        date(2013, 11, 30),
        date(2013, 12, 24),
        date(2013, 12, 25),
        date(2013, 12, 31),
    ]


def test_bridge_days_and_range_edges() -> None:
    # 2017-07-04 was a Tuesday: Monday the 3rd is the bridge day
    assert {date(2017, 7, 3), date(2017, 7, 4)} <= holiday_days(date(2017, 7, 1), date(2017, 7, 31))
    # 2015-07-04 a Saturday: no bridge day
    assert holiday_days(date(2015, 7, 1), date(2015, 7, 31)) == {date(2015, 7, 4)}
    # a range cutting a long weekend keeps only its own days
    assert holiday_days(date(2013, 5, 26), date(2013, 5, 26)) == {date(2013, 5, 26)}
    assert holiday_days(date(2013, 2, 1), date(2013, 2, 28)) == set()
