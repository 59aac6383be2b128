"""The rows of each feature view, computed from the warehouse with DuckDB SQL (numpy for the intraday
windows); :mod:`hybridops.features.compute` writes them as Parquet for Feast.

Point-in-time rules. The prediction horizon ``H`` (``model.horizon_minutes``, a multiple of 15) says when a
flight is predicted: at ``as_of = sched_dep_utc - H``. Every consumer asks Feast for the values at that
instant (the entity frame's ``event_timestamp`` is ``as_of``, see ``hybridops.features.entities``), every
row is stamped with the time its value became known, and the keys of the hour/quarter-hour views are laid
out so that the *latest* row of a key is never stamped after the as-of time of the flights that read it:
the online store (which keeps only the latest row per key) then serves what the offline join returns.

* ``origin_weather`` (entity ``origin_utc_hour`` = ``ORIGIN-YYYY-MM-DDTHH``, the UTC hour of the scheduled
  departure): the hourly observation, stamped with ``weather.time_hour`` (the hour it describes). Its ttl is
  ``WEATHER_TTL_HOURS``. An observation at ``t`` may serve the flights scheduled from ``t + H`` on (their
  as-of time is then at or after ``t``): it is written under the keys of the departure hours
  ``ceil_hour(t + H) .. + WEATHER_TTL_HOURS`` (same timestamp), and Feast's ttl still decides at the minute. The point-in-time value is the same as a join on the origin
  alone, but the join key now picks at most four rows per flight instead of the origin's whole year
  (Feast's DuckDB join compares every row that shares a key: 3.6 s -> 0.1 s on 195k flights).
* ``carrier_delay_stats`` / ``route_delay_stats``: one row per entity and local day D, stamped
  ``T = D 00:00 America/New_York`` in UTC. A flight's outcome is *known* at
  ``known_at = sched_dep_utc + dep_delay minutes`` (cancelled or without a departure delay:
  ``sched_dep_utc``); the stats at T use flights with ``known_at`` in ``[T - N days, T)``. Delay means and
  rates are over departed flights (``delayed_15`` not null), the cancel rate over all flights. A row exists
  for an entity and day when at least one flight is known in the longest (28-day) window.
  Windows that reach into earlier months read whatever earlier months ``fct_flights`` holds, so the first
  loaded month's first weeks see shorter histories; for the same loaded data the result is deterministic.
* ``origin_hour_delay_stats`` (entity ``origin_hour`` = ``ORIGIN-HH``, the local scheduled hour): the same
  28-day stats per origin and scheduled hour of day; the key comes from the flight itself.
* ``origin_intraday`` (entity ``origin_slot`` = ``ORIGIN-YYYY-MM-DDTHH:MM``, the UTC quarter hour of the
  scheduled departure): the delay state of the origin on a 15-minute grid ``g``, stamped ``g``: departed
  flights whose departure was known in ``[g - 3 h, g)`` and ``[g - 1 h, g)`` (count, mean departure delay,
  share delayed) and the backlog (flights scheduled before ``g`` that had not departed by ``g``).
  The row at ``g`` is written under the key of the quarter hour ``g + H``: exactly the flights whose
  as-of time lies in ``[g, g + 15 min)`` read it (ttl 15 minutes).
* ``tail_last_flight`` (entity ``tailnum``): the plane's departures from New York, each stamped when its
  delay became known (``known_at``): its departure delay, whether it was delayed and the instant itself
  (``tail_last_departed_at``, Unix seconds); ttl 1 day, so a flight sees the plane's last departure known
  before its as-of time.
* ``plane_profile``: static reference data from ``planes`` stamped with the fixed ``STATIC_EVENT_TIMESTAMP``
  (2013-01-01 00:00 UTC, before every flight of the data set), written once as partition ``static``;
  ``plane_age_years = 2013 - year``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from hybridops.features.keys import (
    _SLOT_FORMAT,
    _UTC_HOUR_FORMAT,
    DEFAULT_HORIZON_MINUTES,
    ORIGIN_HOUR_SQL,
    REFERENCE_YEAR,
    SLOT_MINUTES,
    STATIC_EVENT_TIMESTAMP,
    WEATHER_TTL_HOURS,
    _month_days,
    local_midnight_utc,
    month_window,
)

MONTHLY_VIEWS = (
    "origin_weather",
    "carrier_delay_stats",
    "route_delay_stats",
    "origin_hour_delay_stats",
    "origin_intraday",
    "tail_last_flight",
)

STATIC_VIEWS = ("plane_profile",)
# Views keyed by an hour of departure: online, a range materializes only its last month's hours (see
# ``hybridops.features.store.materialize_months``).
HOURLY_VIEWS = ("origin_weather", "origin_intraday")


def _day_grid(months: Sequence[str]) -> pd.DataFrame:
    """Every local day of ``months`` with its local midnight in naive UTC."""
    days = sorted({day for month_key in months for day in _month_days(month_key)})
    return pd.DataFrame(
        {
            "day": days,
            "event_timestamp": pd.to_datetime([local_midnight_utc(d) for d in days]),
        }
    )


_KNOWN_FLIGHTS = """
    select {key} as entity,
           case when cancelled or dep_delay is null then sched_dep_utc
                else sched_dep_utc + to_microseconds(cast(round(dep_delay * 60000000) as bigint))
           end as known_at,
           cancelled,
           dep_delay,
           delayed_15
    from fct_flights
    where {key} is not null
"""


def _window_stats_sql(key: str, long_days: int) -> str:
    """Per entity and day: every flight known in ``[T - long_days, T)`` with its age flags."""
    return f"""
        with known as ({_KNOWN_FLIGHTS.format(key=key)}),
        -- Only flights known inside the grid's overall window can join: the range join then reads
        -- about two months of flights instead of the whole warehouse (a third of the time).
        in_window as (
            select * from known
            where known_at >= (select min(event_timestamp) from _day_grid) - interval {long_days} day
              and known_at < (select max(event_timestamp) from _day_grid)
        ),
        joined as (
            select k.entity, g.event_timestamp, k.cancelled, k.dep_delay, k.delayed_15,
                   k.known_at >= g.event_timestamp - interval {{short_days}} day as in_short
            from _day_grid g
            join in_window k
              on k.known_at >= g.event_timestamp - interval {long_days} day
             and k.known_at < g.event_timestamp
        )
    """


def _carrier_sql() -> str:
    base = _window_stats_sql("carrier", 28).format(short_days=7)
    return (
        base
        + """
        select entity as carrier,
               event_timestamp,
               cast(count(*) filter (where in_short) as bigint) as carrier_flights_7d,
               avg(dep_delay) filter (where in_short and delayed_15 is not null)
                   as carrier_dep_delay_mean_7d,
               avg(cast(delayed_15 as double)) filter (where in_short) as carrier_delay_rate_7d,
               avg(cast(cancelled as double)) filter (where in_short) as carrier_cancel_rate_7d,
               avg(cast(delayed_15 as double)) as carrier_delay_rate_28d
        from joined
        group by entity, event_timestamp
        order by carrier, event_timestamp
    """
    )


def _trailing_28d_sql(entity: str, key_sql: str) -> str:
    """28-day stats per entity and day: flights known, mean departure delay, delay rate."""
    base = _window_stats_sql(key_sql, 28).format(short_days=28)
    return (
        base
        + f"""
        select entity as {entity},
               event_timestamp,
               cast(count(*) as bigint) as {entity}_flights_28d,
               avg(dep_delay) filter (where delayed_15 is not null) as {entity}_dep_delay_mean_28d,
               avg(cast(delayed_15 as double)) as {entity}_delay_rate_28d
        from joined
        group by entity, event_timestamp
        order by {entity}, event_timestamp
    """
    )


_WEATHER_SQL = f"""
    select origin || '-' || strftime(time_hour + to_hours(reach + ?), '{_UTC_HOUR_FORMAT}') as origin_utc_hour,
           origin,
           time_hour as event_timestamp,
           cast(temp as double) as temp,
           cast(dewp as double) as dewp,
           cast(humid as double) as humid,
           cast(wind_speed as double) as wind_speed,
           cast(wind_gust as double) as wind_gust,
           cast(precip as double) as precip,
           cast(pressure as double) as pressure,
           cast(visib as double) as visib
    from weather, range({WEATHER_TTL_HOURS + 1}) as hours(reach)
    where time_hour >= ? and time_hour < ? and origin is not null
    order by origin, event_timestamp, reach
"""

# The flights an origin's delay state is computed from (a departure is never a day late in the data:
# earlier flights are gone before the window starts).
_ORIGIN_FLIGHTS_SQL = """
    select origin, sched_dep_utc, coalesce(cancelled, false) as cancelled, dep_delay,
           cast(delayed_15 as double) as delayed_15,
           case when cancelled or dep_delay is null then sched_dep_utc
                else sched_dep_utc + to_microseconds(cast(round(dep_delay * 60000000) as bigint))
           end as known_at
    from fct_flights
    where origin is not null and sched_dep_utc >= ? - interval 1 day and sched_dep_utc < ?
    order by origin
"""


def _window(
    known: np.ndarray, delay: np.ndarray, late: np.ndarray, grid: np.ndarray, width: np.timedelta64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Departures known in ``[g - width, g)`` for each g of ``grid``: count, mean delay, share delayed
    (``delay``, ``late``: cumulative sums over ``known``, sorted, with a leading 0)."""
    hi = np.searchsorted(known, grid, "left")
    lo = np.searchsorted(known, grid - width, "left")
    n = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, (delay[hi] - delay[lo]) / n, np.nan)
        rate = np.where(n > 0, (late[hi] - late[lo]) / n, np.nan)
    return n, mean, rate


def _origin_intraday(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, horizon_minutes: int
) -> pd.DataFrame:
    """The origin's delay state every SLOT_MINUTES in ``[start, end)``: one row per origin and instant g.

    Windows are differences of cumulative sums read with binary search (a SQL range or ASOF join of the
    grid with the flights took seconds per month; this takes milliseconds).
    """
    flights = con.execute(_ORIGIN_FLIGHTS_SQL, [start, end]).df()
    grid = pd.date_range(start, end, freq=f"{SLOT_MINUTES}min", inclusive="left").to_numpy("datetime64[us]")
    hour, three = np.timedelta64(1, "h"), np.timedelta64(3, "h")
    frames = []
    for origin, rows in flights.groupby("origin", sort=True):
        gone = rows[~rows["cancelled"] & rows["dep_delay"].notna()].sort_values("known_at")
        known = gone["known_at"].to_numpy("datetime64[us]")
        delay = np.concatenate([[0.0], np.cumsum(gone["dep_delay"].to_numpy("float64"))])
        late = np.concatenate([[0.0], np.cumsum(gone["delayed_15"].to_numpy("float64"))])

        n3, mean3, rate3 = _window(known, delay, late, grid, three)
        n1, mean1, rate1 = _window(known, delay, late, grid, hour)
        # backlog at g: scheduled before g, and neither gone nor cancelled before g (a flight is settled at
        # the later of its departure and its schedule; a cancellation is known at the schedule)
        sched = np.sort(rows["sched_dep_utc"].to_numpy("datetime64[us]"))
        settled = np.sort(np.maximum(rows["known_at"], rows["sched_dep_utc"]).to_numpy("datetime64[us]"))
        backlog = np.searchsorted(sched, grid, "left") - np.searchsorted(settled, grid, "left")
        slots = pd.DatetimeIndex(grid + np.timedelta64(horizon_minutes, "m")).strftime(_SLOT_FORMAT)
        frames.append(
            pd.DataFrame(
                {
                    "origin_slot": f"{origin}-" + slots,
                    "event_timestamp": grid,
                    "origin_departed_3h": n3,
                    "origin_dep_delay_mean_3h": mean3,
                    "origin_delay_rate_3h": rate3,
                    "origin_departed_1h": n1,
                    "origin_dep_delay_mean_1h": mean1,
                    "origin_delay_rate_1h": rate1,
                    "origin_backlog": backlog,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["origin_slot", "event_timestamp", *_INTRADAY_FEATURES])
    return pd.concat(frames, ignore_index=True)


_INTRADAY_FEATURES = [
    "origin_departed_3h",
    "origin_dep_delay_mean_3h",
    "origin_delay_rate_3h",
    "origin_departed_1h",
    "origin_dep_delay_mean_1h",
    "origin_delay_rate_1h",
    "origin_backlog",
]

# Each departure of a plane, stamped when its delay was known (the plane's last flight before an instant).
_TAIL_SQL = f"""
    with known as ({_KNOWN_FLIGHTS.format(key="tailnum")})
    -- one row per plane and instant (two departures known at the same minute are averaged), so the
    -- point-in-time join never has to choose between rows of equal timestamps
    select entity as tailnum,
           known_at as event_timestamp,
           avg(dep_delay) as tail_last_dep_delay,
           avg(cast(delayed_15 as double)) as tail_last_delayed,
           epoch_ms(known_at) / 1000.0 as tail_last_departed_at
    from known
    where not cancelled and dep_delay is not null and known_at >= ? and known_at < ?
    group by entity, known_at
    order by tailnum, event_timestamp
"""

_PLANES_SQL = f"""
    select tailnum,
           cast(? as timestamp) as event_timestamp,
           cast(year as bigint) as plane_year,
           cast(seats as bigint) as plane_seats,
           cast(engines as bigint) as plane_engines,
           cast({REFERENCE_YEAR} - year as bigint) as plane_age_years
    from planes
    where tailnum is not null
    order by tailnum
"""

_INT_COLUMNS = {
    "carrier_flights_7d",
    "route_flights_28d",
    "origin_hour_flights_28d",
    "plane_year",
    "plane_seats",
    "plane_engines",
    "plane_age_years",
    "origin_departed_3h",
    "origin_departed_1h",
    "origin_backlog",
}


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable Parquet types: nullable int64 counts, naive microsecond timestamps."""
    frame = frame.copy()
    for column in frame.columns:
        if column in _INT_COLUMNS:
            frame[column] = frame[column].astype("Int64")
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"]).astype("datetime64[us]")
    return frame


def compute_view(
    con: duckdb.DuckDBPyConnection,
    view: str,
    month_key: str,
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
) -> pd.DataFrame:
    """The rows of one feature view (``month_key`` is ignored for the static ``plane_profile``)."""
    if view in STATIC_VIEWS:
        return _normalise(con.execute(_PLANES_SQL, [STATIC_EVENT_TIMESTAMP]).df())
    return _compute_months(con, view, [month_key], horizon_minutes)


def _compute_months(
    con: duckdb.DuckDBPyConnection, view: str, months: Sequence[str], horizon_minutes: int
) -> pd.DataFrame:
    """The rows of a monthly view for all of ``months`` in one query.

    Per-query costs (planning, scanning ``fct_flights``, the range join's sort) are paid once for the
    range instead of once per month. Months that are not contiguous also bring the weather rows of the
    months between them; :func:`_split_months` leaves those out.
    """
    windows = [month_window(month_key) for month_key in months]
    start = min(window[0] for window in windows)
    end = max(window[1] for window in windows)
    if view == "origin_weather":
        lead_hours = -(
            -horizon_minutes // 60
        )  # observations are on the hour: ceil_hour(t + H) = t + ceil(H/60)
        frame = con.execute(_WEATHER_SQL, [lead_hours, start, end]).df()
    elif view == "origin_intraday":
        frame = _origin_intraday(con, start, end, horizon_minutes)
    elif view == "tail_last_flight":
        frame = con.execute(_TAIL_SQL, [start, end]).df()
    else:
        sql = {
            "carrier_delay_stats": _carrier_sql(),
            "route_delay_stats": _trailing_28d_sql("route", "route"),
            "origin_hour_delay_stats": _trailing_28d_sql("origin_hour", ORIGIN_HOUR_SQL),
        }[view]
        con.register("_day_grid", _day_grid(months))
        try:
            frame = con.execute(sql).df()
        finally:
            con.unregister("_day_grid")
    return _normalise(frame)
