import pytest

from hybridops.errors import UsageError
from hybridops.months import month_keys, parse_month_range


def test_default_is_every_available_month():
    assert parse_month_range(None, "2013-01", "2013-12") == [f"2013-{m:02d}" for m in range(1, 13)]


def test_inclusive_range_and_single_month():
    assert parse_month_range("2013-01:2013-03", "2013-01", "2013-12") == ["2013-01", "2013-02", "2013-03"]
    assert parse_month_range("2013-07", "2013-01", "2013-12") == ["2013-07"]


def test_open_ends_and_spaces():
    assert parse_month_range("2013-11:", "2013-01", "2013-12") == ["2013-11", "2013-12"]
    assert parse_month_range(":2013-02", "2013-01", "2013-12") == ["2013-01", "2013-02"]
    assert parse_month_range(":", "2013-01", "2013-12") == month_keys("2013-01", "2013-12")
    # " 2013-01" was reported as outside 2013-01..2013-12: the space was compared with the month.
    assert parse_month_range(" 2013-01 ", "2013-01", "2013-12") == ["2013-01"]
    assert parse_month_range("2013-01 : 2013-02", "2013-01", "2013-12") == ["2013-01", "2013-02"]


def test_range_across_a_year_boundary():
    assert month_keys("2012-11", "2013-02") == ["2012-11", "2012-12", "2013-01", "2013-02"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("2013-13", "'2013-13' is not a month"),
        ("13-01", "'13-01' is not a month"),
        ("2013-03:2013-01", "ends before it starts"),
        ("2014-01", "outside the available partitions 2013-01..2013-12"),
        ("2012-12:2013-02", "2012-12 is outside"),
        ("2013-01:2013-02:2013-03", "more than one ':'"),
        ("2013-01, 2013-02", "'2013-01, 2013-02' is not a month"),
    ],
)
def test_bad_ranges_say_what_is_wrong(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_month_range(spec, "2013-01", "2013-12")
