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
    DEPARTED_AT,
    REQUEST_FEATURES,
    REQUEST_VIEW,
    STORE_INPUTS,
    TURN_FEATURE,
    categorical_features,
    code_of,
    codes,
    model_features,
    request_features,
    request_matrix,
    served_columns,
    with_request_features,
)
from hybridops.features.store import apply_definitions, feature_names, feature_store, historical_features
from hybridops.inference.batch import scoring_entities
from hybridops.serving.features import local_to_unix
from hybridops.serving.schemas import Flight
from hybridops.settings import Settings
from hybridops.training.dataset import labelled_flights


def _one(carrier: object, origin: object, dest: object, utc: str) -> dict[str, float]:
    frame = request_features([carrier], [origin], [dest], pd.to_datetime([utc]), [None])
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
    frame = request_features(["UA"] * n, ["EWR"] * n, ["IAH"] * n, utc, np.full(n, np.nan))
    local = utc.dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    np.testing.assert_array_equal(frame["sched_hour"], local.dt.hour.astype("float64"))
    np.testing.assert_array_equal(frame["sched_minute"], local.dt.minute.astype("float64"))
    np.testing.assert_array_equal(frame["day_of_week"], (local.dt.dayofweek + 1).astype("float64"))


def test_departures_as_naive_utc_aware_or_unix_seconds_agree() -> None:
    naive = pd.to_datetime(["2013-07-01 21:30", "2013-12-24 03:05", None])
    aware = pd.Series(naive).dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    seconds = np.array([ts.timestamp() if not pd.isna(ts) else np.nan for ts in naive.tz_localize("UTC")])
    carriers, origins, dests = ["UA", "AA", "B6"], ["EWR", "JFK", "LGA"], ["IAH", "LAX", "BOS"]
    departed = seconds - 3600.0
    expected = request_matrix(carriers, origins, dests, naive, departed)
    np.testing.assert_array_equal(request_matrix(carriers, origins, dests, aware, departed), expected)
    np.testing.assert_array_equal(request_matrix(carriers, origins, dests, seconds, departed), expected)
    assert expected[0, :3].tolist() == [17.0, 30.0, 1.0]  # 17:30 EDT, a Monday
    assert np.isnan(expected[2, :3]).all() and not np.isnan(expected[2, 3:6]).any()  # no departure, codes
    assert expected[:2, 6].tolist() == [60.0, 60.0] and np.isnan(expected[2, 6])


def test_minutes_since_the_planes_last_departure() -> None:
    sched = pd.to_datetime(["2013-07-01 21:30", "2013-07-01 21:30", "2013-07-01 21:30", "2013-07-01 21:30"])
    departed_at = pd.Timestamp("2013-07-01 18:45", tz="UTC").timestamp()
    # Unix seconds as the store keeps them: floats, an object column with None, nullable Float64
    for departed in (
        np.array([departed_at, np.nan, departed_at - 60.0, departed_at + 0.5]),
        pd.Series([departed_at, None, departed_at - 60.0, departed_at + 0.5], dtype="object"),
        pd.Series([departed_at, None, departed_at - 60.0, departed_at + 0.5], dtype="Float64"),
        [departed_at, None, departed_at - 60.0, departed_at + 0.5],
    ):
        turn = request_features(["UA"] * 4, ["EWR"] * 4, ["IAH"] * 4, sched, departed)[TURN_FEATURE]
        np.testing.assert_array_equal(turn.to_numpy(), [165.0, np.nan, 166.0, 164.0 + 59.5 / 60.0])
    with pytest.raises(ValueError, match="1 departures of planes for 4 flights"):
        request_matrix(["UA"] * 4, ["EWR"] * 4, ["IAH"] * 4, sched, [departed_at])


def test_frame_helpers_and_the_model_feature_list() -> None:
    with pytest.raises(ValueError, match="lacks"):
        with_request_features(pd.DataFrame({"carrier": ["UA"]}))
    with pytest.raises(ValueError, match="values for 2 departures"):
        request_matrix(["UA"], ["EWR", "JFK"], ["IAH", "LAX"], np.array([0.0, 1.0]), [None, None])
    frame = pd.DataFrame(
        {
            "carrier": ["UA"],
            "origin": ["EWR"],
            "dest": ["IAH"],
            "sched_dep_utc": [pd.Timestamp("2013-01-01")],
            DEPARTED_AT: [pd.Timestamp("2012-12-31 22:30", tz="UTC").timestamp()],
        },
        index=[7],
    )
    once = with_request_features(frame.assign(sched_hour=99.0))  # recomputed, not kept
    assert once.index.tolist() == [7] and once.loc[7, "sched_hour"] == 19.0
    assert once.loc[7, TURN_FEATURE] == 90.0
    assert list(once.columns) == [*frame.columns, *REQUEST_FEATURES]
    # the stored instant is an input of the request features, never a model input itself
    assert STORE_INPUTS == [DEPARTED_AT] and DEPARTED_AT in feature_names()
    assert model_features() == [*(n for n in feature_names() if n != DEPARTED_AT), *REQUEST_FEATURES]
    assert served_columns() == [*feature_names(), *REQUEST_FEATURES]
    assert categorical_features(model_features()) == CATEGORICAL_REQUEST_FEATURES
    assert categorical_features(feature_names()) == []


# --- one flight, every consumer ----------------------------------------------------------------------
FLIGHTS = [
    fct_row(1, "2013-03-10 06:59", 5.0, "UA", "EWR", "IAH"),  # the last EST minute
    fct_row(2, "2013-03-10 07:00", 30.0, "9E", "JFK", "BUF"),  # the first EDT minute
    fct_row(3, "2013-03-31 04:45", 0.0, "B6", "LGA", "BOS"),  # March 31 00:45 EDT, a Sunday
    fct_row(4, "2013-03-20 16:15", None, "AA", "JFK", "LAX", cancelled=True),  # scored, not trained on
    # the plane's departure (known 11:10) before flight 4's as-of time (14:15): 305 minutes before it
    fct_row(5, "2013-03-20 11:00", 10.0, "AA", "JFK", "MIA"),
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
    store = feature_store(settings)
    # training and batch scoring: the point-in-time features of their entity rows, then the request
    # features (as build_training_set and score_months do)
    labelled = labelled_flights(con, ["2013-03"]).entities.drop(columns=["label"])
    training = _by_flight(with_request_features(historical_features(store, labelled)))
    scored = with_request_features(historical_features(store, scoring_entities(con, "2013-03")))
    scoring = _by_flight(scored)
    assert len(training) == 4 and len(scoring) == 5
    pd.testing.assert_frame_equal(training, scoring.loc[training.index])

    # the service: the request body (New York local time) as /predict turns it into the matrix, with the
    # plane's departure as its store read gives it
    local = con.execute("select flight_id, carrier, origin, dest, sched_dep_local from fct_flights").df()
    flights = [
        Flight(carrier=r.carrier, flight=1, origin=r.origin, dest=r.dest, sched_dep=r.sched_dep_local)
        for r in local.itertuples()
    ]
    sched = np.array([local_to_unix(f.sched_dep) for f in flights])
    departed = scored.set_index(scored["flight_id"].astype(str))[DEPARTED_AT]
    served = request_matrix(
        [f.carrier for f in flights],
        [f.origin for f in flights],
        [f.dest for f in flights],
        sched,
        departed.loc[local["flight_id"].astype(str)].to_numpy(dtype="float64"),
    )
    serving = pd.DataFrame(
        served, columns=REQUEST_FEATURES, index=local["flight_id"].astype(str)
    ).sort_index()
    pd.testing.assert_frame_equal(serving, scoring, check_names=False)

    # Feast's on-demand view offline, from the request fields and tail_last_flight at the as-of time
    utc = con.execute("select flight_id, carrier, origin, dest, tailnum, sched_dep_utc from fct_flights").df()
    request = pd.DataFrame(
        {
            "request_carrier": utc["carrier"],
            "request_origin": utc["origin"],
            "request_dest": utc["dest"],
            "request_sched_dep": utc["sched_dep_utc"].dt.tz_localize("UTC"),
            "tailnum": utc["tailnum"],
        }
    )
    refs = [f"{REQUEST_VIEW}:{name}" for name in REQUEST_FEATURES]
    as_of = utc["sched_dep_utc"] - pd.Timedelta(minutes=settings.model.horizon_minutes)
    entity_df = request.assign(flight_id=utc["flight_id"], event_timestamp=as_of.dt.tz_localize("UTC"))
    offline = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    feast_offline = offline.set_index(offline["flight_id"].astype(str))[REQUEST_FEATURES].sort_index()
    pd.testing.assert_frame_equal(feast_offline.astype("float64"), scoring, check_names=False)

    # the values themselves (flight_id order: flights 2, 1, 4, 5, 3): 03:00 EDT and 01:59 EST on the
    # transition day (a Sunday), a Wednesday noon and 07:00, a Sunday just after midnight; only flight
    # 4's plane departed within a day before its as-of time
    assert scoring["sched_hour"].tolist() == [3.0, 1.0, 12.0, 7.0, 0.0]
    assert scoring["day_of_week"].tolist() == [7.0, 7.0, 3.0, 3.0, 7.0]
    assert scoring["dest_code"].tolist() == [code_of(d) for d in ("BUF", "IAH", "LAX", "MIA", "BOS")]
    turn = scoring[TURN_FEATURE].tolist()
    assert turn[2] == 305.0 and np.isnan([turn[i] for i in (0, 1, 3, 4)]).all()


def test_feast_online_computes_the_request_features_from_the_online_store(world) -> None:
    """Feast's own online read (and so its feature server): the on-demand view takes the plane's last
    departure from the online store, the rest from the request."""
    settings, _ = world
    store = feature_store(settings)
    store.materialize(datetime(2013, 3, 1), datetime(2013, 4, 1), feature_views=["tail_last_flight"])
    # Online: the plane's latest departure, flight 3's, known at 2013-03-31 04:45 UTC.
    sched = pd.Timestamp("2013-03-31 08:00", tz="UTC")
    row = {
        "request_carrier": "B6",
        "request_origin": "LGA",
        "request_dest": "BOS",
        "request_sched_dep": sched.to_pydatetime(),
        "tailnum": "N1",
    }
    refs = [f"{REQUEST_VIEW}:{name}" for name in REQUEST_FEATURES]
    online = store.get_online_features(features=refs, entity_rows=[row]).to_df()
    departed = pd.Timestamp("2013-03-31 04:45", tz="UTC").timestamp()
    expected = request_features(["B6"], ["LGA"], ["BOS"], [sched.timestamp()], [departed])
    pd.testing.assert_frame_equal(online[REQUEST_FEATURES].astype("float64"), expected)
    assert online[TURN_FEATURE].iloc[0] == 195.0
    # a plane the store does not know: the request features without the turn
    unknown = store.get_online_features(features=refs, entity_rows=[{**row, "tailnum": "N404"}]).to_df()
    assert pd.isna(unknown[TURN_FEATURE].iloc[0]) and unknown["sched_hour"].iloc[0] == 4.0


def test_the_feature_service_lists_the_on_demand_view(world) -> None:
    settings, _ = world
    store = feature_store(settings)
    service = store.get_feature_service("flight_delay_v1")
    names = [projection.name for projection in service.feature_view_projections]
    assert names[-1] == REQUEST_VIEW and len(names) == 8
    view = store.get_on_demand_feature_view(REQUEST_VIEW)
    assert [f.name for f in view.features] == REQUEST_FEATURES
    # its sources: the request and, from the stored view, only the plane's last departure
    assert [p.name for p in view.source_feature_view_projections.values()] == ["tail_last_flight"]
    assert [f.name for f in view.source_feature_view_projections["tail_last_flight"].features] == [
        DEPARTED_AT
    ]


def test_a_departure_given_with_an_offset_is_the_same_instant() -> None:
    local = datetime(2013, 7, 1, 17, 30)
    aware = datetime.fromisoformat("2013-07-01T23:30:00+02:00")  # the same instant in Paris
    matrix = request_matrix(
        ["UA", "UA"],
        ["EWR", "EWR"],
        ["IAH", "IAH"],
        np.array([local_to_unix(local), local_to_unix(aware)]),
        np.array([np.nan, np.nan]),
    )
    np.testing.assert_array_equal(matrix[0], matrix[1])
