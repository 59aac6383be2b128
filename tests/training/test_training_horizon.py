"""The prediction horizon, feature by feature: nothing known after ``sched_dep - model.horizon_minutes``.

Two warehouses hold the same synthetic flights and weather up to an instant ``CUT``; in the second, every
fact that becomes known at or after ``CUT`` is changed (departure delays of flights that leave after it,
flights scheduled after it cancelled, weather observed after it). Each builds its own feature tables and
Feast store. A flight predicted before ``CUT`` (as-of time ``sched_dep_utc - horizon`` earlier than
``CUT``) must get exactly the same value of every feature from both, through the same point-in-time
retrieval training and batch scoring use. Flights scheduled within the horizon after ``CUT``, whose own
departures changed, are among them. A control shows the change reaches every time-varying view for the
flights predicted after ``CUT``, so the comparison is not vacuous.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from training_support import feast_for, synthetic_warehouse

from hybridops.features.keys import DEFAULT_HORIZON_MINUTES
from hybridops.features.request import served_columns, with_request_features
from hybridops.features.store import historical_features, load_definitions_module
from hybridops.settings import Settings
from hybridops.training.dataset import labelled_flights

MONTHS = ["2013-01", "2013-02"]
CUT = pd.Timestamp("2013-02-10 19:07")  # naive UTC, off the quarter-hour grid on purpose
WEATHER = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]


def _change_after_cut(con: duckdb.DuckDBPyConnection) -> None:
    known_at = "sched_dep_utc + to_microseconds(cast(round(dep_delay * 60000000) as bigint))"
    con.execute(
        f"""update fct_flights set dep_delay = dep_delay + 300, delayed_15 = true
            where not cancelled and dep_delay is not null and {known_at} >= ?""",
        [CUT],
    )
    con.execute(
        """update fct_flights set cancelled = true, dep_delay = null, delayed_15 = null
           where sched_dep_utc >= ? and flight % 3 = 0""",
        [CUT],
    )
    changes = ", ".join(f"{c} = coalesce({c}, 0) + 50" for c in WEATHER)
    con.execute(f"update weather set {changes} where time_hour >= ?", [CUT])


def _features(tmp: Path, name: str, source: Path | None) -> pd.DataFrame:
    database = tmp / f"{name}.duckdb"
    settings = Settings(home=tmp / name)
    if source is None:
        con = duckdb.connect(str(database))
        synthetic_warehouse(con, MONTHS)
    else:
        shutil.copy(source, database)
        con = duckdb.connect(str(database))
        _change_after_cut(con)
    try:
        store = feast_for(con, settings, MONTHS)
        # The original outcomes of the first warehouse define the flights (same ids in both).
        entities = labelled_flights(con, MONTHS, DEFAULT_HORIZON_MINUTES).entities  # with sched_dep_utc
    finally:
        con.close()
    # the stored features and the request features computed from them (the minutes since the plane's
    # last departure take its instant from the store)
    frame = with_request_features(historical_features(store, entities.drop(columns=["label"])))
    return frame.set_index("flight_id").sort_index()


@pytest.fixture(scope="module")
def before_and_after(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("horizon")
    original = _features(tmp, "original", None)
    changed = _features(tmp, "changed", tmp / "original.duckdb")
    common = original.index.intersection(changed.index)
    original, changed = original.loc[common], changed.loc[common]
    as_of = original["sched_dep_utc"] - pd.Timedelta(minutes=DEFAULT_HORIZON_MINUTES)
    assert (original["event_timestamp"] == as_of).all(), "the entity timestamp is the as-of time"
    return {"original": original, "changed": changed, "before": as_of < CUT}


def _differs(a: pd.Series, b: pd.Series) -> np.ndarray:
    x = pd.to_numeric(a, errors="coerce").to_numpy(dtype="float64")
    y = pd.to_numeric(b, errors="coerce").to_numpy(dtype="float64")
    return ~((np.isnan(x) & np.isnan(y)) | np.isclose(x, y, rtol=0, atol=1e-9))


@pytest.mark.parametrize("feature", served_columns())
def test_no_feature_uses_what_is_known_after_the_horizon(
    before_and_after: dict[str, Any], feature: str
) -> None:
    original, changed, before = (
        before_and_after["original"],
        before_and_after["changed"],
        before_and_after["before"],
    )
    predicted_before = before.to_numpy()
    # Some of them depart after the cut (inside the horizon): their own delay was changed.
    within_horizon = predicted_before & (original["sched_dep_utc"] >= CUT).to_numpy()
    assert within_horizon.sum() > 0
    leaked = _differs(original[feature], changed[feature]) & predicted_before
    assert not leaked.any(), (
        f"{feature}: {int(leaked.sum())} flights predicted before {CUT} see a value known after it, e.g. "
        f"{original.index[leaked][:3].tolist()}"
    )
    assert original.loc[predicted_before, feature].notna().any(), f"{feature} is never present"


def test_the_change_reaches_every_time_varying_view(before_and_after: dict[str, Any]) -> None:
    """Control: predicted after the cut, each view's features see the changed facts."""
    original, changed, before = (
        before_and_after["original"],
        before_and_after["changed"],
        before_and_after["before"],
    )
    after = ~before.to_numpy()
    module = load_definitions_module()
    for view, features in module.VIEW_FEATURES.items():
        if view == "plane_profile":  # static reference data, nothing of it changed
            continue
        moved = any((_differs(original[f], changed[f]) & after).any() for f in features)
        assert moved, f"{view}: no feature changed after the cut; the comparison would prove nothing"
