"""Feast definitions of the shared flight features (entities, sources, views and the feature service).

The Parquet sources live under the warehouse's Parquet root
(``<parquet_root>/features/<view>/month_key=<YYYY-MM|static>/data.parquet``, written by
``hybridops.features.compute.build_feature_tables``). Nothing here reads the environment: the platform calls
``definitions(settings.parquet_dir)`` (see ``hybridops.features.store.apply_definitions``), so every path
follows the configured ``HYBRIDOPS_HOME``.

The module-level objects exist only for the Feast CLI (``feast apply`` in this folder collects module
globals); they point at the default state directory of a source checkout, ``<repo>/.hybridops``, which
matches ``feature_store.yaml`` here. With another home, apply through hybridops instead of the CLI.

Every timestamp is naive UTC (the warehouse's one clock). Views and their event timestamps:

Every consumer asks for the values at the flight's as-of time, scheduled departure minus
``model.horizon_minutes`` (see ``hybridops.features.views``).

* ``origin_weather`` (entity ``origin_utc_hour``, e.g. ``EWR-2013-01-01T10``, the UTC hour of the scheduled
  departure): hourly weather observed at ``time_hour``; ttl 3 h. Each observation is written under the
  keys of the departure hours whose as-of time it precedes (from the horizon on, and the next three), so
  a flight's key picks its candidate observations directly and the ttl keeps only those at most 3 h old.
* ``carrier_delay_stats`` (entity ``carrier``): one row per carrier and local day D at D 00:00
  America/New_York (in UTC), over flights whose delay was known before that instant; ttl 2 days.
* ``route_delay_stats`` (entity ``route``, e.g. ``EWR-IAH``): the same over 28 days; ttl 2 days.
* ``origin_hour_delay_stats`` (entity ``origin_hour``, e.g. ``EWR-17``): the same per origin and local
  scheduled hour of day over 28 days; ttl 2 days.
* ``plane_profile`` (entity ``tailnum``): static reference data from the planes table, stamped with the
  fixed 2013-01-01 00:00 UTC (before every flight of the data) and no ttl (never expires).
* ``origin_intraday`` (entity ``origin_slot``, e.g. ``EWR-2013-01-01T10:15``, the UTC quarter hour of the
  scheduled departure): the origin's delay state in the 1 and 3 hours before the as-of time (departed
  flights, their mean delay and share delayed, the backlog of flights scheduled and not yet gone); ttl 15 minutes.
* ``tail_last_flight`` (entity ``tailnum``): the plane's last departure known before the as-of time
  (its delay, delayed or not, and when it departed), stamped when it was known; ttl 1 day.

One on-demand view has no table: ``flight_request`` computes the request-time features (scheduled local
hour, minute, day of week; carrier, origin and destination codes; the minutes since the plane's last
departure) from the request source ``flight_request_source`` and ``tail_last_flight``'s
``tail_last_departed_at`` with ``hybridops.features.request.request_features``, the function training,
batch scoring and the prediction service call themselves; so Feast's ``get_online_features`` and feature
server return the model's whole input for ``flight_delay_v1``. Its request fields are prefixed
(``request_carrier``...): Feast reads an entity row's field that a request source declares as request data
only, and ``carrier`` is also the join key of ``carrier_delay_stats``.
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.data_format import ParquetFormat
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.permissions.action import AuthzedAction
from feast.permissions.permission import Permission
from feast.permissions.policy import RoleBasedPolicy
from feast.types import Float64, Int64, String, UnixTimestamp

from hybridops.features.request import DEPARTED_AT, REQUEST_FEATURES, REQUEST_VIEW
from hybridops.settings import FeastSettings

FEATURE_SERVICE = "flight_delay_v1"
TIMESTAMP_FIELD = "event_timestamp"

# Feature names per view, in a fixed order (also the column order of hybridops' feature frames).
VIEW_FEATURES: dict[str, dict[str, Any]] = {
    "origin_weather": {
        "temp": Float64,
        "dewp": Float64,
        "humid": Float64,
        "wind_speed": Float64,
        "wind_gust": Float64,
        "precip": Float64,
        "pressure": Float64,
        "visib": Float64,
    },
    "carrier_delay_stats": {
        "carrier_flights_7d": Int64,
        "carrier_dep_delay_mean_7d": Float64,
        "carrier_delay_rate_7d": Float64,
        "carrier_cancel_rate_7d": Float64,
        "carrier_delay_rate_28d": Float64,
    },
    "route_delay_stats": {
        "route_flights_28d": Int64,
        "route_dep_delay_mean_28d": Float64,
        "route_delay_rate_28d": Float64,
    },
    "origin_hour_delay_stats": {
        "origin_hour_flights_28d": Int64,
        "origin_hour_dep_delay_mean_28d": Float64,
        "origin_hour_delay_rate_28d": Float64,
    },
    "plane_profile": {
        "plane_year": Int64,
        "plane_seats": Int64,
        "plane_engines": Int64,
        "plane_age_years": Int64,
    },
    "origin_intraday": {
        "origin_departed_3h": Int64,
        "origin_dep_delay_mean_3h": Float64,
        "origin_delay_rate_3h": Float64,
        "origin_departed_1h": Int64,
        "origin_dep_delay_mean_1h": Float64,
        "origin_delay_rate_1h": Float64,
        "origin_backlog": Int64,
    },
    "tail_last_flight": {
        "tail_last_dep_delay": Float64,
        "tail_last_delayed": Float64,
        # When it departed (Unix seconds): no model input itself, the on-demand view turns it into the
        # minutes to the flight's own departure (hybridops.features.request.TURN_FEATURE).
        "tail_last_departed_at": Float64,
    },
}
VIEW_ENTITY: dict[str, str] = {
    "origin_weather": "origin_utc_hour",
    "carrier_delay_stats": "carrier",
    "route_delay_stats": "route",
    "origin_hour_delay_stats": "origin_hour",
    "plane_profile": "tailnum",
    "origin_intraday": "origin_slot",
    "tail_last_flight": "tailnum",
}
VIEW_TTL: dict[str, timedelta] = {
    "origin_weather": timedelta(hours=3),
    "carrier_delay_stats": timedelta(days=2),
    "route_delay_stats": timedelta(days=2),
    "origin_hour_delay_stats": timedelta(days=2),
    "plane_profile": timedelta(0),  # Feast: a ttl of 0 never expires (static reference data)
    "origin_intraday": timedelta(minutes=15),  # one grid step: each slot key holds one row
    "tail_last_flight": timedelta(days=1),
}
ENTITY_DESCRIPTIONS: dict[str, str] = {
    "origin_utc_hour": (
        "Origin and UTC hour of the scheduled departure, 'ORIGIN-YYYY-MM-DDTHH' (e.g. 'EWR-2013-01-01T10')."
    ),
    "carrier": "Two-letter carrier code.",
    "route": "Origin and destination airport codes, 'ORIGIN-DEST'.",
    "tailnum": "Plane tail number.",
    "origin_hour": "Origin and local scheduled departure hour, 'ORIGIN-HH' (e.g. 'EWR-17').",
    "origin_slot": (
        "Origin and UTC quarter hour of the scheduled departure, 'ORIGIN-YYYY-MM-DDTHH:MM' "
        "(e.g. 'EWR-2013-01-01T10:15')."
    ),
}


# The request source's fields, in request_features' argument order (carrier, origin, dest, departure).
REQUEST_FIELDS: dict[str, Any] = {
    "request_carrier": String,
    "request_origin": String,
    "request_dest": String,
    "request_sched_dep": UnixTimestamp,  # the scheduled departure (an instant; naive means UTC)
}


def flight_request_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """The on-demand view's transformation: hybridops' one definition of the request features.

    Self-contained: Feast 0.67 runs it from its source text, executed with only ``pd`` and ``np`` defined.
    """
    from hybridops.features.request import request_features

    return request_features(
        inputs["request_carrier"],
        inputs["request_origin"],
        inputs["request_dest"],
        inputs["request_sched_dep"],
        inputs["tail_last_departed_at"],
    )


def request_view(tail_last_flight: FeatureView) -> OnDemandFeatureView:
    """``flight_request``: the request features from the request source and the plane's last departure
    (``tail_last_flight``'s ``tail_last_departed_at``); no table, nothing materialized."""
    source = RequestSource(
        name=f"{REQUEST_VIEW}_source",
        schema=[Field(name=name, dtype=dtype) for name, dtype in REQUEST_FIELDS.items()],
    )
    return OnDemandFeatureView(
        name=REQUEST_VIEW,
        sources=[source, tail_last_flight[[DEPARTED_AT]]],
        schema=[Field(name=name, dtype=Float64) for name in REQUEST_FEATURES],
        udf=flight_request_features,
        # Feast runs the source text (falling back to the dill-pickled function), as its decorator stores it.
        udf_string=inspect.getsource(flight_request_features),
        mode="pandas",
        description="Request-time features of a flight (hybridops.features.request).",
    )


def source_path(parquet_root: Path, view: str) -> str:
    """Glob over every monthly (and the ``static``) partition of one feature table."""
    return str(Path(parquet_root) / "features" / view / "*" / "data.parquet")


def definitions(parquet_root: Path) -> list[Any]:
    """All Feast objects, with sources under ``parquet_root`` (entities, views, then the service)."""
    entities = {
        name: Entity(name=name, join_keys=[name], value_type=ValueType.STRING, description=text)
        for name, text in ENTITY_DESCRIPTIONS.items()
    }
    views: list[FeatureView] = []
    for view, features in VIEW_FEATURES.items():
        entity = VIEW_ENTITY[view]
        source = FileSource(
            name=f"{view}_source",
            path=source_path(parquet_root, view),
            file_format=ParquetFormat(),
            timestamp_field=TIMESTAMP_FIELD,
        )
        views.append(
            FeatureView(
                name=view,
                entities=[entities[entity]],
                ttl=VIEW_TTL[view],
                schema=[Field(name=name, dtype=dtype) for name, dtype in features.items()],
                source=source,
                online=True,
            )
        )
    request = request_view(next(v for v in views if v.name == "tail_last_flight"))
    service = FeatureService(name=FEATURE_SERVICE, features=[*views, request])
    return [*entities.values(), *views, request, service]


READ_PERMISSION = "online-read"
WRITE_PERMISSION = "online-write"


def permissions(reader_role: str, writer_role: str) -> list[Permission]:
    """Who may do what through Feast's servers, by role (with Kubernetes auth, Role names in the server's
    namespace; with OIDC, roles in the token).

    Feast checks them only in a server that authenticates (``auth: kubernetes`` or ``oidc``): the platform's
    own reads and materializations go through the SDK and are never checked. A request no Permission matches
    is refused, so the actions left out here (registry create, update, delete; offline reads) are nobody's
    through the servers. Writers read too: a job that pushes usually checks what it wrote.
    """
    return [
        Permission(
            name=READ_PERMISSION,
            actions=[AuthzedAction.DESCRIBE, AuthzedAction.READ_ONLINE],
            policy=RoleBasedPolicy(roles=[reader_role, writer_role]),
        ),
        Permission(
            name=WRITE_PERMISSION,
            # Feast's /push and /write-to-online-store ask for WRITE_ONLINE (or WRITE_OFFLINE, when pushing
            # to the offline store); /materialize and /materialize-incremental for WRITE_ONLINE.
            actions=[AuthzedAction.WRITE_ONLINE, AuthzedAction.WRITE_OFFLINE],
            policy=RoleBasedPolicy(roles=[writer_role]),
        ),
    ]


# --- module-level objects for the Feast CLI only (default home of a source checkout) ---------------
_DEFAULT_PARQUET_ROOT = Path(__file__).resolve().parents[2] / ".hybridops" / "warehouse" / "parquet"
(
    origin_utc_hour,
    carrier,
    route,
    tailnum,
    origin_hour,
    origin_slot,
    origin_weather,
    carrier_delay_stats,
    route_delay_stats,
    origin_hour_delay_stats,
    plane_profile,
    origin_intraday,
    tail_last_flight,
    flight_request,
    flight_delay_v1,
) = definitions(_DEFAULT_PARQUET_ROOT)
# The settings' default role names (a section model: defaults only, no environment read).
online_read, online_write = permissions(FeastSettings().reader_role, FeastSettings().writer_role)
