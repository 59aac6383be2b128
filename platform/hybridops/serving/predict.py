"""``POST /predict``: body -> validated flights -> online features -> probabilities -> JSON, and the ASGI
fast path that serves it around FastAPI's router.

:class:`PredictHandler` reads the body itself (413 above ``serving.max_body_bytes``, declared or streamed),
validates it with pydantic's ``model_validate_json`` (422 naming the field), reads the Feast online store
for the batch's distinct entities in one round trip (:mod:`hybridops.serving.features`), adds the request
features computed from the body (:mod:`hybridops.features.request`), predicts with the
in-memory booster and writes the JSON with orjson. It runs on the event loop: a store round trip is about
0.1 ms, less than a hop through the thread pool, and a single-core worker gains nothing from threads;
store timeouts bound the rest (:mod:`hybridops.serving.service`).

:class:`PredictFastPath` is an ASGI middleware that sends ``POST /predict`` straight to the handler: FastAPI's
router, request object and dependency solving cost about a sixth of a one-flight request. The FastAPI
route stays (OpenAPI, and the same handler answers there); errors still reach the app's error handler,
whose ServerErrorMiddleware sits outside user middleware.

Admission control (:class:`PredictFastPath`): the answer is computed on the event loop, so under overload
requests would queue without limit behind each other (every one of them answered late). A request is
counted once its body is whole until its answer is sent; above ``serving.max_inflight_requests`` it is
refused at once with 503 + Retry-After. While its body arrives it is counted apart, up to
``serving.max_reading_requests`` (a bound on the memory of bodies being read): counted with the admitted
ones, 16 clients sending a body one byte a second held every place and every other request got 503.
A client that disconnects before its body is whole is counted (``errors_total{reason="disconnected"}``)
and answered nothing; it is not an internal error. An admitted request yields once to the loop before its turn,
so the requests that arrived together are all counted before any is answered; one that then waited past
``serving.max_queue_wait_seconds`` (from the end of its body) is refused too instead of answered late. The refusals cost
microseconds, so the admitted requests keep their latency; ``hybridops_serving_rejected_requests_total``
counts them by reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from hybridops.inference.batch import DECISION_THRESHOLD
from hybridops.serving.features import StoreUnavailableError, default_batch, entity_row, local_to_unix
from hybridops.serving.schemas import PredictRequest
from hybridops.serving.service import Service

log = logging.getLogger(__name__)
_JSON = (b"content-type", b"application/json")
# Errors listed in a 422: a 30 KB body of 10,001 empty objects made 50,005 of them (a 3.9 MB answer)
MAX_ERRORS = 20


@dataclass(frozen=True)
class Answer:
    status: int
    content: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send(self, send: Send) -> None:
        headers = [_JSON, (b"content-length", str(len(self.content)).encode()), *self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.content})


def error_answer(
    status: int, detail: str, errors: list[dict[str, Any]] | None = None, retry_after: str | None = None
) -> Answer:
    content = orjson.dumps({"detail": detail, "errors": errors or []})
    return Answer(status, content, [(b"retry-after", retry_after.encode())] if retry_after else [])


def _field(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when it exceeds ``limit`` bytes (declared or streamed)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                return None
            break
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class PredictHandler:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.serving = service.settings.serving
        self.metrics = service.metrics
        self.retry_after = str(self.serving.retry_after_seconds)
        self._requests_ok = self.metrics.requests.labels("200")

    def _finish(self, started: float, answer: Answer, reason: str | None = None) -> Answer:
        metrics = self.metrics
        metrics.latency.observe(time.perf_counter() - started)
        ok = answer.status == 200
        (self._requests_ok if ok else metrics.requests.labels(str(answer.status))).inc()
        if reason:
            metrics.errors.labels(reason).inc()
        return answer

    def overloaded(self, started: float, reason: str) -> Answer:
        self.metrics.rejected.labels(reason).inc()
        detail = "the service is at capacity; retry later"
        return self._finish(started, error_answer(503, detail, retry_after=self.retry_after), "overloaded")

    async def read(self, scope: Scope, receive: Receive, started: float) -> bytes | Answer:
        """The body, or the 413 or 415 answer; ClientDisconnect when the client left before sending it whole."""
        for name, value in scope["headers"]:
            # never inflated (a 47 KB gzip body is 50 MB of JSON): refused before it is read, named
            if name == b"content-encoding" and value.strip().lower() != b"identity":
                coding = value.decode("latin-1")
                detail = f"Content-Encoding {coding!r} is not accepted: send the JSON body uncompressed"
                return self._finish(started, error_answer(415, detail), "unsupported_encoding")
        body = await read_body(scope, receive, self.serving.max_body_bytes)
        if body is None:
            detail = f"request body exceeds serving.max_body_bytes = {self.serving.max_body_bytes} bytes"
            return self._finish(started, error_answer(413, detail), "too_large")
        return body

    async def respond(self, started: float, body: bytes) -> Answer:
        """The answer to a whole body, or 503 when it waited too long for its turn."""
        read = time.perf_counter()  # the wait for a slow client's body is not a wait for our turn
        await asyncio.sleep(0)  # let the requests that arrived with this one be counted (module docstring)
        if time.perf_counter() - read > self.serving.max_queue_wait_seconds:
            return self.overloaded(started, "queue_wait")
        return self.answer(started, body)

    async def __call__(self, scope: Scope, receive: Receive) -> Answer:
        started = time.perf_counter()
        body = await self.read(scope, receive, started)
        return body if isinstance(body, Answer) else await self.respond(started, body)

    def answer(self, started: float, body: bytes) -> Answer:
        service, serving, metrics = self.service, self.serving, self.metrics
        try:
            parsed = PredictRequest.model_validate_json(body)
        except ValidationError as exc:
            errors = [
                {"field": _field(err["loc"]), "message": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_input=False)[:MAX_ERRORS]
            ]
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
            if exc.error_count() > len(errors):
                detail += f" ({exc.error_count()} errors, the first {len(errors)} listed)"
            return self._finish(started, error_answer(422, detail, errors), "validation")
        flights = parsed.flights
        n = len(flights)
        if n > serving.max_flights:
            detail = f"flights: {n} flights, at most serving.max_flights = {serving.max_flights} per request"
            return self._finish(started, error_answer(422, detail), "validation")
        model = service.holder.current
        if model is None:
            detail = f"no model loaded ({service.holder.last_error})"
            return self._finish(started, error_answer(503, detail, retry_after=self.retry_after), "no_model")
        rows = [entity_row(f.carrier, f.origin, f.dest, f.tailnum, f.sched_dep) for f in flights]
        sched = np.fromiter((local_to_unix(f.sched_dep) for f in flights), np.float64, n)
        try:
            batch = service.read_features(rows, sched)
            store_down = False
        except StoreUnavailableError as exc:
            metrics.store_errors.inc()
            if serving.on_store_error != "degrade":
                log.warning("%s", exc)
                detail = "online feature store unavailable; retry later"
                answer = error_answer(503, detail, retry_after=self.retry_after)
                return self._finish(started, answer, "store_unavailable")
            batch = default_batch(n, len(service.store_names), len(service.view_names))
            store_down = True
        matrix = service.model_matrix(flights, sched, batch.matrix)
        probabilities = model.predict(matrix)
        ages = sched[:, None] - batch.event_ts
        degraded: np.ndarray = np.asarray(batch.missing.any(axis=1))
        views = service.view_names
        probability_list = probabilities.tolist()
        degraded_list: list[bool] = degraded.tolist()
        predictions = [
            {
                "delay_probability": p,
                "delayed": p >= DECISION_THRESHOLD,
                # NaN (no online value) is written as null by orjson
                "feature_age_seconds": dict(zip(views, age_row, strict=True)),
                "degraded": d,
            }
            for p, age_row, d in zip(probability_list, ages.tolist(), degraded_list, strict=True)
        ]
        any_degraded = store_down or any(degraded_list)
        payload = {
            "predictions": predictions,
            "model": {"name": model.name, "version": model.version},
            "degraded": any_degraded,
        }
        metrics.batch_size.observe(n)
        metrics.flights.inc(n)
        for p in probability_list:
            metrics.predictions.observe(p)
        if any_degraded:
            for view, count in zip(views, batch.missing.sum(axis=0).tolist(), strict=True):
                if count:
                    metrics.missing.labels(view).inc(count)
            metrics.degraded_responses.inc()
            metrics.degraded_flights.inc(sum(degraded_list))
        if serving.log_sample_rate > 0:
            service.feature_log.add(
                flights,
                [r["route"] or "" for r in rows],
                matrix,
                batch.event_ts,
                probabilities,
                degraded,
                sched,
                (model.name, model.version),
            )
        return self._finish(started, Answer(200, orjson.dumps(payload)))


class PredictFastPath:
    """ASGI middleware: ``POST /predict`` to :class:`PredictHandler`, everything else to the app."""

    def __init__(self, app: ASGIApp, handler: PredictHandler) -> None:
        self.app = app
        self.handler = handler
        self.limit = handler.serving.max_inflight_requests
        self.reading_limit = handler.serving.max_reading_requests
        self.inflight = 0
        self.reading = 0
        self._gauge = handler.metrics.inflight
        self._reading_gauge = handler.metrics.reading
        self._disconnected = handler.metrics.errors.labels("disconnected")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/predict" and scope["method"] == "POST":
            await self.predict(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handler
        started = time.perf_counter()
        if self.reading >= self.reading_limit:
            await handler.overloaded(started, "reading").send(send)
            return
        self.reading += 1
        self._reading_gauge.set(self.reading)
        try:
            body = await handler.read(scope, receive, started)
        except ClientDisconnect:
            self._disconnected.inc()  # nobody to answer; not a failure of the service
            return
        finally:
            self.reading -= 1
            self._reading_gauge.set(self.reading)
        if isinstance(body, Answer):
            await body.send(send)
            return
        if self.inflight >= self.limit:
            await handler.overloaded(started, "inflight").send(send)
            return
        self.inflight += 1
        self._gauge.set(self.inflight)
        try:
            answer = await handler.respond(started, body)
            await answer.send(send)
        finally:
            self.inflight -= 1
            self._gauge.set(self.inflight)
