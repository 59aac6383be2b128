"""The ASGI app of the prediction service: ``create_app(settings)``.

``POST /predict`` reads the body itself (413 above ``serving.max_body_bytes``), validates it with pydantic's
``model_validate_json`` (422 naming the field), reads the Feast online store for the batch's distinct
entities (:mod:`hybridops.serving.features`), predicts with the in-memory booster on a numpy matrix in the
booster's feature order and writes the JSON itself. ``/healthz`` depends on nothing; ``/readyz`` needs a
model and a reachable online store; ``/metrics`` is Prometheus text.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from hybridops.features.store import feature_names, load_definitions_module
from hybridops.inference.batch import DECISION_THRESHOLD
from hybridops.serving.feature_log import FeatureLog
from hybridops.serving.features import (
    OnlineFeatureReader,
    StoreUnavailableError,
    default_batch,
    entity_row,
    local_to_unix,
)
from hybridops.serving.metrics import ServingMetrics
from hybridops.serving.model_holder import ModelHolder
from hybridops.serving.schemas import ErrorResponse, PredictRequest, PredictResponse
from hybridops.settings import Settings

log = logging.getLogger(__name__)
_READER_RETRY_SECONDS = 2.0


class Service:
    """The state of one app: settings, metrics, model holder, feature reader and feature log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = ServingMetrics()
        self.names = feature_names()
        self.view_names = list(load_definitions_module().VIEW_FEATURES)
        self.holder = ModelHolder(settings, self.names, self.metrics)
        self.feature_log = FeatureLog(settings, self.names, self.view_names, self.metrics)
        self._reader: OnlineFeatureReader | None = None
        self._reader_error: str | None = None
        self._reader_tried = 0.0
        self._reader_lock = threading.Lock()

    def reader(self) -> OnlineFeatureReader:
        """The feature reader, built on first use and rebuilt (at most every 2 s) after a failure."""
        if self._reader is not None:
            return self._reader
        with self._reader_lock:
            if self._reader is None:
                if time.monotonic() - self._reader_tried < _READER_RETRY_SECONDS and self._reader_error:
                    raise StoreUnavailableError(self._reader_error)
                self._reader_tried = time.monotonic()
                try:
                    reader = OnlineFeatureReader(self.settings)
                except Exception as exc:
                    self._reader_error = f"feature store unavailable: {exc}"
                    raise StoreUnavailableError(self._reader_error) from exc
                if reader.view_names != self.view_names:
                    self.view_names = reader.view_names
                self._reader = reader
            return self._reader

    def start(self) -> None:
        self.holder.load_initial()
        self.holder.start()
        self.feature_log.start()
        try:
            self.reader()
        except StoreUnavailableError as exc:
            log.warning("%s", exc)

    def stop(self) -> None:
        self.holder.stop()
        self.feature_log.stop()


def _field(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _error(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = json.dumps({"detail": detail, "errors": errors or []}).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def create_app(settings: Settings) -> FastAPI:
    service = Service(settings)
    serving = settings.serving
    metrics = service.metrics
    retry_after = str(serving.retry_after_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="hybridops prediction service",
        summary="Flight departure delay probabilities from Feast online features and the champion model.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service

    def finish(started: float, status: int, reason: str | None, response: Response) -> Response:
        metrics.latency.observe(time.perf_counter() - started)
        metrics.requests.labels(str(status)).inc()
        if reason:
            metrics.errors.labels(reason).inc()
        return response

    async def read_body(request: Request) -> bytes | None:
        """The body, or None when it exceeds max_body_bytes (declared or streamed)."""
        limit = serving.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    @app.post(
        "/predict",
        summary="Delay probabilities of 1 to serving.max_flights flights",
        response_model=PredictResponse,
        responses={
            413: {"model": ErrorResponse, "description": "Body larger than serving.max_body_bytes."},
            422: {"model": ErrorResponse, "description": "Invalid request; the message names the field."},
            503: {"model": ErrorResponse, "description": "No model loaded or online store unreachable."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/PredictRequest"},
                        "examples": {
                            "one_flight": {
                                "summary": "One flight",
                                "value": PredictRequest.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                            }
                        },
                    }
                },
            }
        },
    )
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        body = await read_body(request)
        if body is None:
            detail = f"request body exceeds serving.max_body_bytes = {serving.max_body_bytes} bytes"
            return finish(started, 413, "too_large", _error(413, detail))
        try:
            parsed = PredictRequest.model_validate_json(body)
        except ValidationError as exc:
            errors = [
                {"field": _field(err["loc"]), "message": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_input=False)
            ]
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
            return finish(started, 422, "validation", _error(422, detail, errors))
        flights = parsed.flights
        n = len(flights)
        if n > serving.max_flights:
            detail = f"flights: {n} flights, at most serving.max_flights = {serving.max_flights} per request"
            return finish(started, 422, "validation", _error(422, detail))
        model = service.holder.current
        if model is None:
            detail = f"no model loaded ({service.holder.last_error})"
            return finish(started, 503, "no_model", _error(503, detail, headers={"Retry-After": retry_after}))
        rows = [entity_row(f.carrier, f.origin, f.dest, f.tailnum, f.sched_dep) for f in flights]
        try:
            batch = service.reader().read(rows)
            store_down = False
        except StoreUnavailableError as exc:
            metrics.store_errors.inc()
            if serving.on_store_error != "degrade":
                log.warning("%s", exc)
                detail = "online feature store unavailable; retry later"
                return finish(
                    started,
                    503,
                    "store_unavailable",
                    _error(503, detail, headers={"Retry-After": retry_after}),
                )
            batch = default_batch(n, len(service.names), len(service.view_names))
            store_down = True
        probabilities = model.predict(batch.matrix)
        sched = np.fromiter((local_to_unix(f.sched_dep) for f in flights), np.float64, n)
        ages = sched[:, None] - batch.event_ts
        degraded: np.ndarray = np.asarray(batch.missing.any(axis=1))
        views = service.view_names
        predictions = []
        for i in range(n):
            p = float(probabilities[i])
            age_row = ages[i]
            predictions.append(
                {
                    "delay_probability": p,
                    "delayed": p >= DECISION_THRESHOLD,
                    "feature_age_seconds": {
                        view: (None if math.isnan(a) else a)
                        for view, a in zip(views, age_row.tolist(), strict=True)
                    },
                    "degraded": bool(degraded[i]),
                }
            )
        any_degraded = bool(degraded.any()) or store_down
        payload = {
            "predictions": predictions,
            "model": {"name": model.name, "version": model.version},
            "degraded": any_degraded,
        }
        # metrics
        metrics.batch_size.observe(n)
        metrics.flights.inc(n)
        for p in probabilities.tolist():
            metrics.predictions.observe(p)
        missing_counts = batch.missing.sum(axis=0)
        for view, count in zip(views, missing_counts.tolist(), strict=True):
            if count:
                metrics.missing.labels(view).inc(count)
        if any_degraded:
            metrics.degraded_responses.inc()
            metrics.degraded_flights.inc(int(degraded.sum()))
        if serving.log_sample_rate > 0:
            service.feature_log.add(
                flights,
                [r["route"] or "" for r in rows],
                batch.matrix,
                batch.event_ts,
                probabilities,
                degraded,
                sched,
                (model.name, model.version),
            )
        content = json.dumps(payload, separators=(",", ":")).encode()
        return finish(started, 200, None, Response(content, media_type="application/json"))

    @app.get("/healthz", summary="Liveness: the process answers (no dependency on the store or registry)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: a model is loaded and the online store answers",
        responses={503: {"description": "Not ready; the body says why."}},
    )
    async def readyz() -> JSONResponse:
        model = service.holder.current
        problems = []
        if model is None:
            problems.append(f"no model loaded ({service.holder.last_error})")
        try:
            service.reader().ping()
        except StoreUnavailableError as exc:
            problems.append(str(exc))
        body: dict[str, Any] = {
            "status": "not ready" if problems else "ready",
            "model": None
            if model is None
            else {"name": model.name, "version": model.version, "source": model.source},
        }
        if problems:
            body["problems"] = problems
            return JSONResponse(body, status_code=503, headers={"Retry-After": retry_after})
        return JSONResponse(body)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error: %s", exc)
        metrics.errors.labels("internal").inc()
        return _error(500, f"internal error: {type(exc).__name__}")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            request_schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request_schema.pop("$defs", {}))
            components["PredictRequest"] = request_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
