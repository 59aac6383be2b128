"""The ASGI app of the prediction service: ``create_app(settings)``.

``POST /predict`` (:mod:`hybridops.serving.predict`): flights -> Feast online features -> the champion's
probabilities, with its error paths (413, 422, 503 with Retry-After or degraded defaults). ``/healthz``
depends on nothing; ``/readyz`` needs a model and a process that is not draining, not the online store
(:mod:`hybridops.serving.service`); ``/metrics`` is Prometheus text. Admission control and the drain on
SIGTERM live in :mod:`hybridops.serving.predict` and :mod:`hybridops.serving.server`.
The state (model holder, feature reader, feature log) lives in :mod:`hybridops.serving.service`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hybridops.serving.hosts import HostCheck
from hybridops.serving.predict import Answer, PredictFastPath, PredictHandler, error_answer
from hybridops.serving.schemas import ErrorResponse, PredictRequest, PredictResponse
from hybridops.serving.service import Service
from hybridops.settings import Settings

log = logging.getLogger(__name__)


def _response(answer: Answer) -> Response:
    headers = {name.decode(): value.decode() for name, value in answer.headers}
    return Response(answer.content, status_code=answer.status, media_type="application/json", headers=headers)


def create_app(settings: Settings, *, freeze_gc: bool = False) -> FastAPI:
    """The app; ``freeze_gc`` when it owns its process (``hybridops serve``), see :meth:`Service.start`."""
    service = Service(settings)
    metrics = service.metrics
    retry_after = str(settings.serving.retry_after_seconds)
    handler = PredictHandler(service)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start(freeze_gc)
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
    app.add_middleware(PredictFastPath, handler=handler)
    # A foreign host gets 400 before any route or the admission count (outermost: added last); a head over
    # serving.max_head_bytes is refused before the app by the protocol (hybridops.serving.http_limits).
    app.add_middleware(HostCheck, allowed=settings.serving.allowed_hosts)

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
        # served by PredictFastPath; this route declares the endpoint (OpenAPI) and answers the same way
        return _response(await handler(request.scope, request.receive))

    # HEAD answers as GET does, without the body (RFC 9110 9.3.2), for probes and proxies that use it; kept
    # out of the OpenAPI schema, where it would repeat the GET operation
    @app.get("/healthz", summary="Liveness: the process answers (no dependency on the store or registry)")
    @app.head("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: a model is loaded, the process is not draining, the store reader passed its check",
        responses={503: {"description": "Not ready; the body says why."}},
    )
    @app.head("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        # The online store's reachability is reported, not required: in an outage the replicas stay in
        # the Service and answer 503 + Retry-After per request (or degrade), see docs/reliability.md.
        model = service.holder.current
        problems = service.readiness()
        body: dict[str, Any] = {
            "status": "not ready" if problems else "ready",
            "model": None
            if model is None
            else {"name": model.name, "version": model.version, "source": model.source},
            "store": {"ok": service.store_error is None, "last_error": service.store_error},
        }
        if problems:
            body["problems"] = problems
            return JSONResponse(body, status_code=503, headers={"Retry-After": retry_after})
        return JSONResponse(body)

    @app.get("/metrics", summary="Prometheus metrics")
    @app.head("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error: %s", exc)
        metrics.errors.labels("internal").inc()
        return _response(error_answer(500, f"internal error: {type(exc).__name__}"))

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
