"""The one clock of the features and the entity keys a flight derives from its scheduled departure.

One clock: every timestamp is naive UTC. A month's feature rows are those whose ``event_timestamp`` falls in
the *local* (America/New_York) month, i.e. ``[M-01 00:00 NY, (M+1)-01 00:00 NY)`` converted to UTC, which
matches the warehouse's local ``month_key`` partitions of flights and weather.

The keys are built the same way everywhere: as SQL over the warehouse (``*_SQL``) and in Python for
a request (``*_key``, :func:`departure_keys`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hybridops.settings import ModelSettings

LOCAL_TZ = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")

STATIC_EVENT_TIMESTAMP = datetime(2013, 1, 1, 0, 0)
REFERENCE_YEAR = STATIC_EVENT_TIMESTAMP.year

# The settings' default horizon (``model.horizon_minutes``) for callers that pass none.
DEFAULT_HORIZON_MINUTES: int = ModelSettings.model_fields["horizon_minutes"].default
SLOT_MINUTES = 15  # the grid of the intraday features; the horizon is a multiple of it

# The scheduled local departure hour at an origin ("EWR-17"): delays build up through the day, so this is
# the strongest schedule signal. Derived the same way everywhere (warehouse SQL here, Python in serving).
ORIGIN_HOUR_SQL = "origin || '-' || lpad(cast(hour(sched_dep_local) as varchar), 2, '0')"


def origin_hour_key(origin: str, sched_dep_local: datetime) -> str:
    """The ``origin_hour`` entity key of a flight (``ORIGIN-HH``, local scheduled hour)."""
    return f"{origin}-{sched_dep_local.hour:02d}"


# The weather view's ttl in hours (``VIEW_TTL`` of the feature repo says the same; a test holds them equal).
WEATHER_TTL_HOURS = 3
_UTC_HOUR_FORMAT = "%Y-%m-%dT%H"
# The flight's ``origin_utc_hour`` key: its origin and the UTC hour of its scheduled departure.
ORIGIN_UTC_HOUR_SQL = f"origin || '-' || strftime(sched_dep_utc, '{_UTC_HOUR_FORMAT}')"


def origin_utc_hour_key(origin: str, sched_dep_utc: datetime) -> str:
    """The ``origin_utc_hour`` entity key of a flight (``ORIGIN-YYYY-MM-DDTHH``, UTC scheduled hour)."""
    return f"{origin}-{sched_dep_utc.strftime(_UTC_HOUR_FORMAT)}"


_SLOT_FORMAT = "%Y-%m-%dT%H:%M"
# The flight's ``origin_slot`` key: its origin and the UTC quarter hour of its scheduled departure.
ORIGIN_SLOT_SQL = (
    f"origin || '-' || strftime(time_bucket(interval {SLOT_MINUTES} minute, sched_dep_utc), '{_SLOT_FORMAT}')"
)


def origin_slot_key(origin: str, sched_dep_utc: datetime) -> str:
    """The ``origin_slot`` entity key of a flight (``ORIGIN-YYYY-MM-DDTHH:MM``, UTC quarter hour)."""
    slot = sched_dep_utc.replace(minute=sched_dep_utc.minute - sched_dep_utc.minute % SLOT_MINUTES)
    return f"{origin}-{slot.strftime(_SLOT_FORMAT)}"


def sched_dep_utc_of(sched_dep: datetime) -> datetime:
    """A scheduled departure (naive means New York local time) as naive UTC."""
    aware = sched_dep if sched_dep.tzinfo is not None else sched_dep.replace(tzinfo=LOCAL_TZ)
    return aware.astimezone(UTC).replace(tzinfo=None, second=0, microsecond=0)


def as_of(sched_dep_utc: datetime, horizon_minutes: int) -> datetime:
    """When a flight is predicted: its scheduled departure minus the horizon (naive UTC)."""
    return sched_dep_utc - timedelta(minutes=horizon_minutes)


def departure_keys(origin: str, sched_dep: datetime) -> dict[str, str]:
    """The entity keys a flight derives from its scheduled departure (naive means New York local time):
    ``origin_utc_hour`` (the weather's), ``origin_hour`` and ``origin_slot``. The service and the skew
    audit both use it."""
    aware = sched_dep if sched_dep.tzinfo is not None else sched_dep.replace(tzinfo=LOCAL_TZ)
    utc = aware.astimezone(UTC).replace(tzinfo=None)
    return {
        "origin_utc_hour": origin_utc_hour_key(origin, utc),
        "origin_hour": origin_hour_key(origin, aware.astimezone(LOCAL_TZ).replace(tzinfo=None)),
        "origin_slot": origin_slot_key(origin, utc),
    }


def local_midnight_utc(day: date) -> datetime:
    """``day`` 00:00 in New York as a naive UTC timestamp."""
    local = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
    return local.astimezone(UTC).replace(tzinfo=None)


def _month_days(month_key: str) -> list[date]:
    year, month = (int(part) for part in month_key.split("-"))
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return [first + timedelta(days=i) for i in range((following - first).days)]


def month_window(month_key: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of a local month in naive UTC."""
    days = _month_days(month_key)
    return local_midnight_utc(days[0]), local_midnight_utc(days[-1] + timedelta(days=1))
