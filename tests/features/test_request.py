"""The request-time features: their values (codes, local time across DST, bad input) and that training,
batch scoring, the prediction service and Feast's on-demand view compute the same values for a flight."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from features_support import fct_row, load_tables, planes_frame, weather_frame

from hybridops.features.compute import build_feature_tables
from hybridops.features.request import (
    CATEGORICAL_REQUEST_FEATURES,
    REQUEST_FEATURES,
    REQUEST_VIEW,
    categorical_features,
    code_of,
    codes,
    model_features,
    request_features,
    request_matrix,
    with_request_features,
)
from hybridops.features.store import apply_definitions, feature_names, feature_store
from hybridops.inference.batch import scoring_entities
from hybridops.serving.features import local_to_unix
from hybridops.serving.schemas import Flight
from hybridops.settings import Settings
from hybridops.training.dataset import labelled_flights


def _one(carrier: object, origin: object, dest: object, utc: str) -> dict[str, float]:
    frame = request_features([carrier], [origin], [dest], pd.to_datetime([utc]))
    return frame.iloc[0].to_dict()


def test_codes_are_base_36_of_the_upper_case_code() -> None:
    assert code_of("UA") == 30 * 36 + 10 == 1090
    assert code_of("9E") == 9 * 36 + 14
    assert code_of("EWR") == (14 * 36 + 32) * 36 + 27
    assert code_of("ewr") == code_of("EWR")  # the same code whatever the case
    assert code_of("ZZZZZ") == 36**5 - 1 < 2**31 - 1  # the longest code is a valid LightGBM category
    assert list(codes(["UA", "AA", "UA"])) == [1090.0, 370.0, 1090.0]


@pytest.mark.parametrize("bad", [None, "", "A-1", " EWR", "EWR ", "ÉWR", "ABCDEF", 42, pd.NA, np.nan])
def test_a_code_that_cannot_be_one_is_missing(bad: object) -> None:
    assert np.isnan(code_of(bad if isinstance(bad, str) else None))
    # in a column, small (a request) or large (a year of flights): each path gives NaN
    assert np.isnan(codes(pd.Series([bad, "UA"], dtype="object"))[0])
    assert np.isnan(codes(pd.Series([bad] * 100 + ["UA"], dtype="object"))[:100]).all()
    assert codes(pd.Series([bad] * 100 + ["UA"], dtype="object"))[100] == 1090.0


def test_string_and_object_columns_code_alike() -> None:
    values = ["UA", None, "9e", "B-6"] * 30
    arrow = codes(pd.Series(values, dtype="string[pyarrow]"))
    np.testing.assert_array_equal(arrow, codes(pd.Series(values, dtype="object")))
    np.testing.assert_array_equal(arrow[:4], codes(values[:4]))


def test_local_time_of_the_departure_in_winter_and_summer() -> None:
    # The same UTC time is 07:00 EST in January and 08:00 EDT in July.
    winter = _one("UA", "EWR", "IAH", "2013-01-09 12:00")
    summer = _one("UA", "EWR", "IAH", "2013-07-10 12:00")
    assert (winter["sched_hour"], summer["sched_hour"]) == (7.0, 8.0)
    assert winter["day_of_week"] == summer["day_of_week"] == 3.0  # both Wednesdays (ISO: Monday = 1)
    # 2013-01-01 04:30 UTC is New Year's Eve 23:30 in New York, a Monday
    assert [_one("UA", "EWR", "IAH", "2013-01-01 04:30")[k] for k in ("sched_hour", "sched_minute")] == [
        23.0,
        30.0,
    ]
    assert _one("UA", "EWR", "IAH", "2013-01-01 04:30")["day_of_week"] == 1.0
    assert _one("UA", "EWR", "IAH", "2013-01-06 12:00")["day_of_week"] == 7.0  # a Sunday


@pytest.mark.parametrize(
    ("utc", "hour", "minute"),
    [
        ("2013-03-10 06:59", 1, 59),  # the last EST minute
        ("2013-03-10 07:00", 3, 0),  # clocks jump to 03:00 EDT
        ("2013-11-03 05:30", 1, 30),  # 01:30 EDT
        ("2013-11-03 06:30", 1, 30),  # 01:30 again, EST
        ("2013-11-03 07:00", 2, 0),
    ],
)
def test_daylight_saving_transitions(utc: str, hour: int, minute: int) -> None:
    values = _one("UA", "EWR", "IAH", utc)
    assert (values["sched_hour"], values["sched_minute"]) == (hour, minute)


def test_every_minute_of_a_year_matches_pandas_time_zone_conversion() -> None:
    # Offsets are cached per UTC hour: a departure at any minute, transitions included, must be exact.
    utc = pd.Series(pd.date_range("2012-12-31", "2014-01-01", freq="min"))
    n = len(utc)
    frame = request_features(["UA"] * n, ["EWR"] * n, ["IAH"] * n, utc)
    local = utc.dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    np.testing.assert_array_equal(frame["sched_hour"], local.dt.hour.astype("float64"))
    np.testing.assert_array_equal(frame["sched_minute"], local.dt.minute.astype("float64"))
    np.testing.assert_array_equal(frame["day_of_week"], (local.dt.dayofweek + 1).astype("float64"))


def test_departures_as_naive_utc_aware_or_unix_seconds_agree() -> None:
    naive = pd.to_datetime(["2013-07-01 21:30", "2013-12-24 03:05", None])
    aware = pd.Series(naive).dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    seconds = np.array([ts.timestamp() if not pd.isna(ts) else np.nan for ts in naive.tz_localize("UTC")])
    carriers, origins, dests = ["UA", "AA", "B6"], ["EWR", "JFK", "LGA"], ["IAH", "LAX", "BOS"]
    expected = request_matrix(carriers, origins, dests, naive)
    np.testing.assert_array_equal(request_matrix(carriers, origins, dests, aware), expected)
    np.testing.assert_array_equal(request_matrix(carriers, origins, dests, seconds), expected)
    assert expected[0, :3].tolist() == [17.0, 30.0, 1.0]  # 17:30 EDT, a Monday
    assert np.isnan(expected[2, :3]).all() and not np.isnan(expected[2, 3:]).any()  # no departure, codes


def test_frame_helpers_and_the_model_feature_list() -> None:
    with pytest.raises(ValueError, match="lacks"):
        with_request_features(pd.DataFrame({"carrier": ["UA"]}))
    with pytest.raises(ValueError, match="values for 2 departures"):
        request_matrix(["UA"], ["EWR", "JFK"], ["IAH", "LAX"], np.array([0.0, 1.0]))
    frame = pd.DataFrame(
        {
            "carrier": ["UA"],
            "origin": ["EWR"],
            "dest": ["IAH"],
            "sched_dep_utc": [pd.Timestamp("2013-01-01")],
        },
        index=[7],
    )
    once = with_request_features(frame.assign(sched_hour=99.0))  # recomputed, not kept
    assert once.index.tolist() == [7] and once.loc[7, "sched_hour"] == 19.0
    assert list(once.columns) == [*frame.columns, *REQUEST_FEATURES]
    assert model_features() == [*feature_names(), *REQUEST_FEATURES]
    assert categorical_features(model_features()) == CATEGORICAL_REQUEST_FEATURES
    assert categorical_features(feature_names()) == []


# --- one flight, every consumer ----------------------------------------------------------------------
FLIGHTS = [
    fct_row(1, "2013-03-10 06:59", 5.0, "UA", "EWR", "IAH"),  # the last EST minute
    fct_row(2, "2013-03-10 07:00", 30.0, "9E", "JFK", "BUF"),  # the first EDT minute
    fct_row(3, "2013-03-31 04:45", 0.0, "B6", "LGA", "BOS"),  # March 31 00:45 EDT, a Sunday
    fct_row(4, "2013-03-20 16:15", None, "AA", "JFK", "LAX", cancelled=True),  # scored, not trained on
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, duckdb.DuckDBPyConnection]:
    tmp: Path = tmp_path_factory.mktemp("request")
    settings = Settings(home=tmp / "home")
    con = duckdb.connect(str(tmp / "warehouse.duckdb"))
    weather = weather_frame([("EWR", "2013-03-10 05:00", 1.0)])
    load_tables(con, pd.DataFrame(FLIGHTS), weather, planes_frame([("N1", 2003, 100, 2)]))
    build_feature_tables(con, settings.parquet_dir, "2013-03")
    apply_definitions(feature_store(settings), settings)
    yield settings, con
    con.close()


def _by_flight(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index(frame["flight_id"].astype(str))[REQUEST_FEATURES].sort_index()


def test_training_scoring_serving_and_feast_compute_the_same_request_features(world) -> None:
    settings, con = world
    # training: the labelled entity rows (build_training_set adds the features to these columns)
    training = _by_flight(with_request_features(labelled_flights(con, ["2013-03"]).entities))
    # batch scoring: every flight of the month, cancelled ones included
    scoring = _by_flight(with_request_features(scoring_entities(con, "2013-03")))
    assert len(training) == 3 and len(scoring) == 4
    pd.testing.assert_frame_equal(training, scoring.loc[training.index])

    # the service: the request body (New York local time) as /predict turns it into the matrix
    local = con.execute("select flight_id, carrier, origin, dest, sched_dep_local from fct_flights").df()
    flights = [
        Flight(carrier=r.carrier, flight=1, origin=r.origin, dest=r.dest, sched_dep=r.sched_dep_local)
        for r in local.itertuples()
    ]
    sched = np.array([local_to_unix(f.sched_dep) for f in flights])
    served = request_matrix(
        [f.carrier for f in flights], [f.origin for f in flights], [f.dest for f in flights], sched
    )
    serving = pd.DataFrame(
        served, columns=REQUEST_FEATURES, index=local["flight_id"].astype(str)
    ).sort_index()
    pd.testing.assert_frame_equal(serving, scoring, check_names=False)

    # Feast's on-demand view, online and offline, from the request fields
    store = feature_store(settings)
    utc = con.execute("select flight_id, carrier, origin, dest, sched_dep_utc from fct_flights").df()
    request = pd.DataFrame(
        {
            "request_carrier": utc["carrier"],
            "request_origin": utc["origin"],
            "request_dest": utc["dest"],
            "request_sched_dep": utc["sched_dep_utc"].dt.tz_localize("UTC"),
        }
    )
    refs = [f"{REQUEST_VIEW}:{name}" for name in REQUEST_FEATURES]
    rows = [
        dict(row, request_sched_dep=row["request_sched_dep"].to_pydatetime())
        for row in request.to_dict("records")
    ]
    online = store.get_online_features(features=refs, entity_rows=rows).to_df()
    feast_online = online[REQUEST_FEATURES].set_axis(utc["flight_id"].astype(str)).sort_index()
    pd.testing.assert_frame_equal(feast_online.astype("float64"), scoring, check_names=False)
    entity_df = request.assign(
        flight_id=utc["flight_id"], event_timestamp=utc["sched_dep_utc"].dt.tz_localize("UTC")
    )
    offline = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    feast_offline = offline.set_index(offline["flight_id"].astype(str))[REQUEST_FEATURES].sort_index()
    pd.testing.assert_frame_equal(feast_offline.astype("float64"), scoring, check_names=False)

    # the values themselves (flight_id order: flights 2, 1, 4, 3): 03:00 EDT and 01:59 EST on the
    # transition day (a Sunday), a Wednesday noon, a Sunday just after midnight
    assert scoring["sched_hour"].tolist() == [3.0, 1.0, 12.0, 0.0]
    assert scoring["day_of_week"].tolist() == [7.0, 7.0, 3.0, 7.0]
    assert scoring["dest_code"].tolist() == [code_of(d) for d in ("BUF", "IAH", "LAX", "BOS")]


def test_the_feature_service_lists_the_on_demand_view(world) -> None:
    settings, _ = world
    store = feature_store(settings)
    service = store.get_feature_service("flight_delay_v1")
    names = [projection.name for projection in service.feature_view_projections]
    assert names[-1] == REQUEST_VIEW and len(names) == 8
    view = store.get_on_demand_feature_view(REQUEST_VIEW)
    assert [f.name for f in view.features] == REQUEST_FEATURES


def test_a_departure_given_with_an_offset_is_the_same_instant() -> None:
    local = datetime(2013, 7, 1, 17, 30)
    aware = datetime.fromisoformat("2013-07-01T23:30:00+02:00")  # the same instant in Paris
    matrix = request_matrix(
        ["UA", "UA"], ["EWR", "EWR"], ["IAH", "IAH"], np.array([local_to_unix(local), local_to_unix(aware)])
    )
    np.testing.assert_array_equal(matrix[0], matrix[1])
