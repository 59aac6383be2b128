"""Monthly partitions: parsing the ``--months`` range and listing month keys (``YYYY-MM``)."""

from __future__ import annotations

import re

from hybridops.errors import UsageError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _parse(value: str, option: str) -> tuple[int, int]:
    match = _MONTH.match(value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise UsageError(f"{option}: '{value}' is not a month; write YYYY-MM, e.g. 2013-01")
    return int(match.group(1)), int(match.group(2))


def check_month(value: str, option: str) -> str:
    """``value`` as a month key (``YYYY-MM``), or a usage error naming ``option``."""
    year, month = _parse(value, option)
    return f"{year:04d}-{month:02d}"


def month_keys(first: str, last: str) -> list[str]:
    """All month keys from ``first`` to ``last`` inclusive."""
    year, month = _parse(first, "first month")
    end = _parse(last, "last month")
    keys = []
    while (year, month) <= end:
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys


def next_month(key: str) -> str:
    """The month key after ``key``."""
    year, month = _parse(key, "month")
    return f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"


def parse_month_range(spec: str | None, first: str, last: str) -> list[str]:
    """Parse ``START:END`` (inclusive), ``START:`` (to the last), ``:END`` (from the first) or a single
    ``YYYY-MM`` within the available partitions; spaces around a month are ignored.

    Args:
        spec: what the user wrote, or None for every available month.
        first: first available partition.
        last: last available partition.

    Raises:
        UsageError: malformed months, a reversed range, or months outside ``first..last``.
    """
    available = month_keys(first, last)
    if not spec:
        return available
    if spec.count(":") > 1:
        raise UsageError(f"--months: '{spec}' has more than one ':'; write START:END, e.g. 2013-01:2013-03")
    if ":" in spec:
        start_text, end_text = spec.split(":")
        start = check_month(start_text, "--months") if start_text.strip() else first
        end = check_month(end_text, "--months") if end_text.strip() else last
    else:
        start = end = check_month(spec, "--months")
    if start > end:
        raise UsageError(f"--months: '{spec}' ends before it starts; write START:END, e.g. 2013-01:2013-03")
    outside = sorted({key for key in (start, end) if key not in available})
    if outside:
        raise UsageError(
            f"--months: {', '.join(outside)} is outside the available partitions {first}..{last}"
        )
    return month_keys(start, end)
