"""Limits on what a client may make the service hold before a request reaches the app: time and head size.

uvicorn (0.54, httptools) sets no deadline on a request being received: a connection that sends nothing, a
head sent one byte a second, a body that never ends (declared longer than sent, or chunked without its last
chunk) were all held open for as long as the client liked (measured: still open after 30 s), so a few
hundred such connections hold the process's descriptors and memory. Nor does it bound the head: a 1 MB
header or 10,000 headers were parsed and handed to the app. Its ``timeout_keep_alive`` only closes a
connection idle *between* requests.

:func:`limited_protocol` is uvicorn's own httptools protocol (``uvicorn.Config(http=...)`` takes a protocol
class) with two bounds:

- **deadline**: from a connection's opening and from the first byte of each request, the whole request (head
  and body) must arrive within ``serving.request_timeout_seconds``, or the connection is closed without an
  answer (as nginx does on its client header and body timeouts: the client is not waiting for one). A
  request that arrived whole is not timed: the app's time to answer is admission control's business.
- **head size**: a head still incomplete after ``serving.max_head_bytes`` bytes gets 431 and the connection
  is closed, so a client cannot make the parser buffer more than that (plus one read). A head that arrived
  whole within one read is measured exactly by :class:`HeadLimit`, in front of the routes.

``hybridops_serving_closed_connections_total{reason}`` counts both.
"""

from __future__ import annotations

import asyncio

import orjson
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hybridops.errors import HybridopsError
from hybridops.serving.metrics import ServingMetrics

# The protocol class is uvicorn's, not a public extension point: its parser callbacks are overridden here,
# so uvicorn is pinned to the version they were written against (pyproject.toml, docs/internals.md).
UVICORN_VERSION = "0.54.0"
_OVERRIDDEN = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
)


class ProtocolAdapterError(HybridopsError):
    """The installed uvicorn is not the one the request limits were written against."""


def check_uvicorn() -> None:
    """Refuse to start with request limits that might silently not apply.

    Raises:
        ProtocolAdapterError: another uvicorn version, or its httptools protocol lacks a callback overridden here.
    """
    missing = [name for name in _OVERRIDDEN if not callable(getattr(HttpToolsProtocol, name, None))]
    if uvicorn.__version__ != UVICORN_VERSION or missing:
        raise ProtocolAdapterError(
            f"hybridops' request limits (serving/http_limits.py) need uvicorn {UVICORN_VERSION}, found "
            f"{uvicorn.__version__}"
            + (f" whose HttpToolsProtocol lacks {', '.join(missing)}" if missing else "")
            + "; install the version pyproject.toml pins"
        )


_SETTING = "serving.max_head_bytes (HYBRIDOPS_SERVING__MAX_HEAD_BYTES)"


def _too_large_detail(limit: int) -> bytes:
    return orjson.dumps({"detail": f"request head exceeds {_SETTING} = {limit} bytes", "errors": []})


def head_size(scope: Scope) -> int:
    """Bytes of a request's head as received: request line and headers (names, values, separators)."""
    line = len(scope["method"]) + len(scope.get("raw_path") or b"") + len(scope["query_string"]) + 12
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"]) + 2


def limited_protocol(timeout: float, max_head_bytes: int, metrics: ServingMetrics) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the deadline and head bound of the module docstring.

    Raises:
        ProtocolAdapterError: see :func:`check_uvicorn`.
    """
    check_uvicorn()
    timed_out = metrics.closed_connections.labels("timeout")
    too_large = metrics.closed_connections.labels("head_too_large")
    body = _too_large_detail(max_head_bytes)
    refusal = (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _in_head = True  # the bytes arriving belong to a request head (or to nothing yet)
        _head_bytes = 0
        _transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._transport = transport
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            head_pending = self._in_head
            super().data_received(data)
            if head_pending and self._in_head:  # this read did not complete the head
                self._head_bytes += len(data)
                if self._head_bytes > max_head_bytes and self._transport is not None:
                    too_large.inc()
                    self._disarm()
                    self._transport.write(refusal)
                    self._transport.close()

        # httptools' parser callbacks: a request begins, its head is complete, it is complete
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0
            self._arm()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = asyncio.get_running_loop().call_later(timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self._transport is not None and not self._transport.is_closing():
                timed_out.inc()
                self._transport.close()

    return LimitedHttpToolsProtocol


class HeadLimit:
    """ASGI middleware: 431 to a request whose head is over ``max_head_bytes`` (one that arrived in one read,
    which the protocol cannot measure before the parser completes it)."""

    def __init__(self, app: ASGIApp, max_head_bytes: int) -> None:
        self.app = app
        self.limit = max_head_bytes
        self.body = _too_large_detail(max_head_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and head_size(scope) > self.limit:
            headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(self.body))]
            await send({"type": "http.response.start", "status": 431, "headers": headers})
            await send({"type": "http.response.body", "body": self.body})
            return
        await self.app(scope, receive, send)
