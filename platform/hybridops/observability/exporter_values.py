"""Values shared by the exporter's sources: the metric prefix and the conversions of read values."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

PREFIX = "hybridops"


def ts(value: datetime | None) -> float | None:
    """Unix seconds of a datetime; naive datetimes (DuckDB, Feast) are UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def month_start(month_key: str) -> float:
    return datetime.strptime(month_key, "%Y-%m").replace(tzinfo=UTC).timestamp()


def finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
