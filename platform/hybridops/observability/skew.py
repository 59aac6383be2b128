"""Online/offline skew audit: served feature vectors recomputed with Feast point-in-time retrieval.

The inference service logs a sample of what it served (``<home>/serving/feature_log``): the entity keys,
every feature value and, per feature view, the event timestamp of the online row it used. For each view
the audit asks Feast's offline store for the value as of that event timestamp (the same row, through the
same definitions) and compares. A served value that differs, or that the offline store cannot reproduce,
is a mismatch: the two paths disagree (a materialization bug, a stale or rewritten offline source, a
serving-side transformation). Null served values (unknown entities) are not compared.

The request-time features (feature view ``flight_request``, computed from the request by
``hybridops.features.request``) have no stored row: the audit computes them again from the logged request
columns (carrier, origin, destination, the departure as the service converted it to UTC) and compares.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hybridops.features.keys import departure_keys
from hybridops.features.request import DEPARTED_AT, REQUEST_FEATURES, REQUEST_VIEW, request_features
from hybridops.features.store import historical_features, load_definitions_module
from hybridops.serving.feature_log import feature_log_dir, log_files
from hybridops.settings import Settings
from hybridops.warehouse.db import replace_rows

if TYPE_CHECKING:  # Feast is imported by the functions that use it (~4 s)
    from feast import FeatureStore

AUDIT_TABLE = "skew_audit"
RELATIVE_TOLERANCE = 1e-9


def read_feature_log(settings: Settings) -> pd.DataFrame:
    """Every logged served vector of every service replica (empty frame when none has logged yet).

    The replicas write their own files into one folder and delete the oldest to keep it bounded: a file
    listed here may be gone when it is read, which only means it aged out.
    """
    frames = []
    for path in log_files(feature_log_dir(settings)):
        try:
            frames.append(pd.read_parquet(path))
        except FileNotFoundError:
            continue
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _entities(log: pd.DataFrame) -> pd.DataFrame:
    # The departure's keys as the service derived them from the request's sched_dep.
    keys = [
        departure_keys(str(origin), datetime.fromisoformat(str(text)))
        for origin, text in zip(log["origin"], log["sched_dep"], strict=True)
    ]
    return pd.DataFrame(
        {
            "flight_id": [f"served-{i}" for i in range(len(log))],
            "origin_utc_hour": [k["origin_utc_hour"] for k in keys],
            "carrier": log["carrier"].astype(str),
            "route": log["route"].astype(str),
            "tailnum": log["tailnum"].astype("string"),
            "origin_hour": [k["origin_hour"] for k in keys],
            "origin_slot": [k["origin_slot"] for k in keys],
        }
    )


def audit(store: FeatureStore, log: pd.DataFrame) -> pd.DataFrame:
    """Per feature view and feature: values compared, mismatches, and how many had no offline value."""
    module = load_definitions_module()
    columns = ["feature_view", "feature", "compared", "mismatches", "missing_offline"]
    rows: list[dict[str, object]] = []
    entities = _entities(log) if len(log) else pd.DataFrame()
    for view, features in module.VIEW_FEATURES.items():
        stamp = f"{view}_event_timestamp"
        served = log[log[stamp].notna()] if stamp in log else log.iloc[0:0]
        if served.empty:
            rows += [
                {"feature_view": view, "feature": f, "compared": 0, "mismatches": 0, "missing_offline": 0}
                for f in features
            ]
            continue
        entity_df = entities.loc[served.index].assign(
            event_timestamp=pd.to_datetime(served[stamp], utc=True).dt.tz_localize(None)
        )
        offline = historical_features(store, entity_df.reset_index(drop=True))
        for feature in features:
            online_values = served[feature].to_numpy(dtype="float64")
            offline_values = pd.to_numeric(offline[feature], errors="coerce").to_numpy(dtype="float64")
            rows.append(_compared(view, feature, online_values, offline_values))
    rows += _request_rows(log)
    return pd.DataFrame(rows, columns=columns)


def _compared(view: str, feature: str, online: np.ndarray, offline: np.ndarray) -> dict[str, object]:
    present = ~np.isnan(online)
    missing = present & np.isnan(offline)
    differs = present & ~missing & ~np.isclose(online, offline, rtol=RELATIVE_TOLERANCE, atol=0)
    return {
        "feature_view": view,
        "feature": feature,
        "compared": int(present.sum()),
        "mismatches": int((missing | differs).sum()),
        "missing_offline": int(missing.sum()),
    }


def _request_rows(log: pd.DataFrame) -> list[dict[str, object]]:
    """The request features as served against the same function applied to the logged request. A log
    written before the service served them has none of their columns: nothing is compared."""
    needed = ["carrier", "origin", "dest", "sched_dep_utc", DEPARTED_AT, *REQUEST_FEATURES]
    if log.empty or any(column not in log.columns for column in needed):
        empty = np.empty(0)
        return [_compared(REQUEST_VIEW, feature, empty, empty) for feature in REQUEST_FEATURES]
    again = request_features(
        log["carrier"], log["origin"], log["dest"], log["sched_dep_utc"], log[DEPARTED_AT]
    )
    return [
        _compared(
            REQUEST_VIEW,
            feature,
            pd.to_numeric(log[feature], errors="coerce").to_numpy(dtype="float64"),
            again[feature].to_numpy(dtype="float64"),
        )
        for feature in REQUEST_FEATURES
    ]


def write_audit(con: object, report: pd.DataFrame, run_id: str, at: datetime) -> int:
    """Replace the stored audit with this one (the exporter reads the latest audit)."""
    frame = report.assign(run_id=run_id, audited_at=at)
    return replace_rows(con, AUDIT_TABLE, frame)  # type: ignore[arg-type]
