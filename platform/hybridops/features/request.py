"""Request-time features: what a prediction request itself says about the flight, computed in one place.

A flight's carrier, origin, destination and scheduled departure are known when it is scheduled, long before
the horizon, so they need no feature store table and no point-in-time join: they are computed from the
request columns, by :func:`request_matrix` only (:func:`request_features` is its frame). Every consumer
calls it: training (``hybridops.training.dataset.build_training_set``), batch scoring
(``hybridops.inference.batch``), the prediction service (``hybridops.serving.service``), the skew audit,
and Feast's on-demand view ``flight_request`` (``dagster_project/feature_repo/flight_features.py``), so
Feast's own online read and feature server compute the same values.

* ``sched_hour``, ``sched_minute``, ``day_of_week`` (ISO, 1 = Monday .. 7 = Sunday): the scheduled
  departure in New York local time (the airports' clock; delays follow the local day's bank structure and
  its build-up), converted from the UTC instant with the IANA rules, so a summer and a winter flight at
  the same UTC time differ by the daylight-saving hour.
* ``carrier_code``, ``origin_code``, ``dest_code``: the upper-case code read as a base-36 number (``UA`` ->
  1090, ``EWR`` -> 19323). Stable without a vocabulary: training, scoring and serving (and a model trained
  a year later) code a value alike, and a code never seen in training is just an unseen category. Null
  (NaN) when the code is empty, not alphanumeric or longer than ``MAX_CODE_LENGTH`` (LightGBM requires
  categories below 2**31). The model declares them as LightGBM categoricals
  (``CATEGORICAL_REQUEST_FEATURES``).
* ``tail_minutes_since_departure``: minutes from the plane's last NYC departure known at the as-of time
  (``tail_last_flight.tail_last_departed_at``, a stored value that is not a model input itself) to this
  flight's scheduled departure. A plane that left a short while before the as-of time must fly out and
  back before it departs again: the shorter the gap, the tighter its turn and the more a late inbound
  delays it. Measured on the pipeline's splits (docs/mlops.md) it is the strongest single addition since
  the intraday state. A difference of two instants, so it needs the request's departure: it is computed
  here, at request time, from the store's value; the raw instant only grows with the calendar and would
  teach the model the date (and drift every month). NaN when the plane has no departure within the
  view's ttl.

All values are float64 (NaN = missing), the matrix type of every consumer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from hybridops.features.keys import LOCAL_TZ
from hybridops.features.store import feature_names

REQUEST_VIEW = "flight_request"  # Feast's on-demand view of them, and their name in the skew audit
TIME_FEATURES = ["sched_hour", "sched_minute", "day_of_week"]
# request column -> feature of its code
CODE_FEATURES = {"carrier": "carrier_code", "origin": "origin_code", "dest": "dest_code"}
CATEGORICAL_REQUEST_FEATURES = list(CODE_FEATURES.values())
TURN_FEATURE = "tail_minutes_since_departure"
REQUEST_FEATURES = [*TIME_FEATURES, *CATEGORICAL_REQUEST_FEATURES, TURN_FEATURE]
# Stored values the request features are computed from that are no model input themselves: the instant of
# the plane's last departure (Unix seconds) in the view ``tail_last_flight``.
DEPARTED_AT = "tail_last_departed_at"
STORE_INPUTS = [DEPARTED_AT]
# The columns the features are computed from; the departure is the UTC instant (naive = UTC) or Unix
# seconds.
REQUEST_COLUMNS = [*CODE_FEATURES, "sched_dep_utc", DEPARTED_AT]
MAX_CODE_LENGTH = 5  # 36**5 - 1 < 2**31 - 1: every code is a valid LightGBM category
_CODE = re.compile(r"[0-9A-Z]+")
_SMALL = 64  # up to this many values (a request), a loop is cheaper than pandas' factorize


def model_features() -> list[str]:
    """The model's input columns, in the order every consumer assembles them: the Feast views' features
    (``feature_names()``) but the ``STORE_INPUTS``, then the request features."""
    return [*(name for name in feature_names() if name not in STORE_INPUTS), *REQUEST_FEATURES]


def served_columns() -> list[str]:
    """The columns the prediction service assembles (and logs): every stored value (``feature_names()``)
    then the request features. A model picks its own columns (``model_features()``) by name."""
    return [*feature_names(), *REQUEST_FEATURES]


def categorical_features(features: Sequence[str]) -> list[str]:
    """The members of ``features`` LightGBM must treat as categories."""
    return [name for name in features if name in CATEGORICAL_REQUEST_FEATURES]


@lru_cache(maxsize=4096)
def code_of(value: Any) -> float:
    """The base-36 code of one carrier or airport code; NaN when it cannot be one (see module doc)."""
    if not isinstance(value, str):
        return np.nan
    text = value.upper()
    if len(text) > MAX_CODE_LENGTH or not _CODE.fullmatch(text):
        return np.nan
    return float(int(text, 36))


def codes(values: Any) -> np.ndarray:
    """:func:`code_of` of every value (nulls, pandas' NA included, give NaN)."""
    items = values.array if isinstance(values, pd.Series) else values
    if len(items) <= _SMALL:
        return np.fromiter((code_of(v if isinstance(v, str) else None) for v in items), np.float64)
    # A column of a year's flights holds a few hundred distinct codes: each is converted once.
    positions, uniques = pd.factorize(pd.Series(items), use_na_sentinel=True)
    table = np.array([*(code_of(v if isinstance(v, str) else None) for v in uniques), np.nan])
    return table[positions]  # the sentinel -1 (a null) picks the trailing NaN


def unix_seconds(sched_dep_utc: Any) -> np.ndarray:
    """Departures as Unix seconds (float64, NaN for a missing one): numbers are taken as Unix seconds,
    naive datetimes as UTC, aware ones converted."""
    if isinstance(sched_dep_utc, np.ndarray) and sched_dep_utc.dtype.kind in "fiu":
        return sched_dep_utc.astype(np.float64, copy=False)
    values = pd.Series(sched_dep_utc) if not isinstance(sched_dep_utc, pd.Series) else sched_dep_utc
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    instants = pd.to_datetime(values, utc=True)  # a naive value is taken as UTC, an aware one converted
    nanoseconds = instants.dt.tz_localize(None).astype("datetime64[ns]").to_numpy().view(np.int64)
    seconds = nanoseconds / 1e9
    seconds[instants.isna().to_numpy()] = np.nan
    return seconds


def _local_offsets(seconds: np.ndarray) -> np.ndarray:
    """New York's UTC offset (seconds) at each instant (NaN for NaN). New York changes its offset only
    on a UTC hour (02:00 local), so the offset of the instant's UTC hour is exact; hours are cached, so a
    year of flights asks zoneinfo ~9k times and a served flight costs a dictionary lookup."""
    offsets = np.full(len(seconds), np.nan)
    known = ~np.isnan(seconds)
    hours = np.floor(seconds[known] / 3600.0).astype(np.int64).tolist()
    offsets[known] = np.fromiter(map(_hour_offset, hours), np.float64, len(hours))
    return offsets


@lru_cache(maxsize=65536)
def _hour_offset(hour: int) -> float:
    offset = datetime.fromtimestamp(hour * 3600, UTC).astimezone(LOCAL_TZ).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def request_matrix(
    carrier: Any, origin: Any, dest: Any, sched_dep_utc: Any, tail_last_departed_at: Any
) -> np.ndarray:
    """The ``REQUEST_FEATURES`` of each flight as an n x 7 float64 matrix (NaN = missing).

    Args:
        carrier, origin, dest: Array-likes of codes (None/NA allowed).
        sched_dep_utc: Array-like of scheduled departures: Unix seconds (numbers), naive UTC or
            tz-aware datetimes.
        tail_last_departed_at: Array-like of the plane's last departure known at the as-of time, as the
            store keeps it: Unix seconds (NaN/None when unknown); see ``TURN_FEATURE``.
    """
    seconds = unix_seconds(sched_dep_utc)
    n = len(seconds)
    out = np.empty((n, len(REQUEST_FEATURES)), dtype=np.float64)
    local = seconds + _local_offsets(seconds)  # New York wall-clock seconds since the epoch
    minutes = np.floor(local / 60.0)
    out[:, 0] = np.floor(minutes / 60.0) % 24  # sched_hour
    out[:, 1] = minutes % 60  # sched_minute
    out[:, 2] = (np.floor(local / 86400.0) + 3) % 7 + 1  # day_of_week: 1970-01-01 was a Thursday (ISO 4)
    for j, values in enumerate((carrier, origin, dest), start=len(TIME_FEATURES)):
        column = codes(values)
        if len(column) != n:
            raise ValueError(f"{REQUEST_FEATURES[j]}: {len(column)} values for {n} departures")
        out[:, j] = column
    # Unix seconds as stored (Float64); an object column (None for a missing value) is read as numbers,
    # never as datetimes (pandas would take the numbers for nanoseconds).
    if isinstance(tail_last_departed_at, np.ndarray) and tail_last_departed_at.dtype.kind == "f":
        departed = tail_last_departed_at  # the service's store matrix column: no conversion per request
    else:
        departed = pd.to_numeric(pd.Series(tail_last_departed_at), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    if len(departed) != n:
        raise ValueError(f"{TURN_FEATURE}: {len(departed)} departures of planes for {n} flights")
    out[:, len(TIME_FEATURES) + len(CODE_FEATURES)] = (seconds - departed) / 60.0
    return out


def request_features(
    carrier: Any, origin: Any, dest: Any, sched_dep_utc: Any, tail_last_departed_at: Any
) -> pd.DataFrame:
    """:func:`request_matrix` as a frame with the ``REQUEST_FEATURES`` columns and a fresh ``RangeIndex``."""
    return pd.DataFrame(
        request_matrix(carrier, origin, dest, sched_dep_utc, tail_last_departed_at), columns=REQUEST_FEATURES
    )


def with_request_features(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with the ``REQUEST_COLUMNS``) with its request features added or replaced."""
    missing = [name for name in REQUEST_COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"cannot compute the request features: the frame lacks {missing}")
    computed = request_features(
        frame["carrier"], frame["origin"], frame["dest"], frame["sched_dep_utc"], frame[DEPARTED_AT]
    )
    computed.index = frame.index
    return frame.drop(columns=REQUEST_FEATURES, errors="ignore").join(computed)
