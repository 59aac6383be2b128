"""Limits on what a client may make the service hold, and the checks of a request's head, before it reaches
the app.

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
- **head size**: a head over ``serving.max_head_bytes`` gets 431 and the connection is closed, measured
  while it arrives (so a client cannot make the parser buffer more than that plus one read) and exactly once
  it is whole (before uvicorn parses its target, which fails on one over 64 KB).

and, once a head is whole, the checks that need the request line as sent (:meth:`~LimitedHttpToolsProtocol.
refusal`): an HTTP version other than 1.0 and 1.1 gets 505; a transfer coding other than ``chunked``
(``gzip, chunked`` passed the parser and its body was read as if plain) 501; an absolute-form target that is
not an ``http(s)://host/path`` URL 400, and the authority of one that is goes into the scope for the Host
check (:mod:`hybridops.serving.hosts`, RFC 9112 3.2.2). A request the parser refuses (smuggling shapes such
as ``Content-Length`` with ``Transfer-Encoding``, bare LF, obs-fold, NUL) gets 400 with a JSON body naming
the parser's reason instead of uvicorn's plain "Invalid HTTP request received.".

``hybridops_serving_closed_connections_total{reason}`` counts each close.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hybridops.errors import HybridopsError
from hybridops.serving.hosts import TARGET_AUTHORITY, valid_authority
from hybridops.serving.metrics import ServingMetrics

# The protocol class is uvicorn's, not a public extension point: its parser callbacks are overridden here,
# so uvicorn is pinned to the version they were written against (pyproject.toml, docs/internals.md).
UVICORN_VERSION = "0.54.0"
_OVERRIDDEN = (
    "connection_made",
    "connection_lost",
    "data_received",
    "send_400_response",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
)
_STATUS = {
    400: b"Bad Request",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    505: b"HTTP Version Not Supported",
}


class ProtocolAdapterError(HybridopsError):
    """The installed uvicorn is not the one the request limits were written against."""


class Refusal(Exception):
    """A request head refused with ``status``; raised in a parser callback, answered by send_400_response."""

    def __init__(self, status: int, detail: str, reason: str = "malformed") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason


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


def answer(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 answer with a JSON body that closes the connection."""
    body = orjson.dumps({"detail": detail, "errors": []})
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
        % (status, _STATUS[status], len(body), body)
    )


def too_large(limit: int) -> Refusal:
    setting = "serving.max_head_bytes (HYBRIDOPS_SERVING__MAX_HEAD_BYTES)"
    detail = f"request head exceeds {setting} = {limit} bytes"
    return Refusal(431, detail, "head_too_large")


def target_authority(target: bytes) -> str | None:
    """The authority (``host[:port]`` as sent) of an absolute-form target, None for origin form or ``*``.

    Raises:
        Refusal: a target that is neither, or an absolute URL that is not ``http(s)://host/path``.
    """
    if target.startswith(b"/") or target == b"*":
        return None
    text = target.decode("latin-1")
    shown = text[:100]
    fix = "send an origin-form path (/predict) or an http(s)://host/path URL"
    url = urlsplit(text)
    if url.scheme.lower() not in ("http", "https") or not url.netloc or not url.path.startswith("/"):
        raise Refusal(400, f"request target {shown!r} is not such a URL: {fix}")
    if "@" in url.netloc:  # user info: a name before '@' that some parsers take for the host
        raise Refusal(400, f"request target {shown!r} has user info: {fix} without it")
    if not valid_authority(url.netloc):
        raise Refusal(400, f"request target's host {url.netloc!r}: send it as host or host:port")
    return url.netloc


def limited_protocol(timeout: float, max_head_bytes: int, metrics: ServingMetrics) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the deadline, head bound and checks of the module docstring.

    Raises:
        ProtocolAdapterError: see :func:`check_uvicorn`.
    """
    check_uvicorn()
    timed_out = metrics.closed_connections.labels("timeout")

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _in_head = True  # the bytes arriving belong to a request head (or to nothing yet)
        _head_bytes = 0
        _transport: asyncio.Transport | None = None
        _pending: Refusal | None = None  # a refusal waiting for the answers to the requests before it

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
                if self._head_bytes > max_head_bytes:
                    self._refuse(too_large(max_head_bytes))

        def send_400_response(self, msg: str) -> None:
            # uvicorn calls this in its handler of the parser's error: the error is the one being handled,
            # and a Refusal raised in a callback below is its context (httptools chains it so)
            error = sys.exc_info()[1]
            refusal = error.__context__ if error is not None else None
            if not isinstance(refusal, Refusal):
                reason = str(error)[:200] if error is not None and str(error) else msg
                if reason == "Pause on PRI/Upgrade":  # llhttp's name for the HTTP/2 connection preface
                    reason = "an HTTP/2 preface; this port speaks HTTP/1.1 only"
                refusal = Refusal(400, f"malformed HTTP/1.1 request: {reason}")
            self._refuse(refusal)

        # httptools' parser callbacks: a request begins, its head is complete, it is complete
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0
            self._arm()

        def on_headers_complete(self) -> None:
            self._in_head = False
            authority = self.refusal()
            if authority is not None:  # an ASGI extension: a dict under its name (the ASGI spec)
                extensions = self.scope.setdefault("extensions", {})
                extensions[TARGET_AUTHORITY] = {"authority": authority}
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def refusal(self) -> str | None:
            """The target's authority (absolute form) or None; raises the Refusal of a head refused."""
            method = self.parser.get_method()
            size = len(method) + len(self.url) + 12 + sum(len(n) + len(v) + 4 for n, v in self.headers) + 2
            if size > max_head_bytes:
                raise too_large(max_head_bytes)
            version = self.parser.get_http_version()
            if version not in ("1.0", "1.1"):
                raise Refusal(505, f"HTTP/{version} is not served: send HTTP/1.1")
            for name, value in self.headers:
                if name == b"transfer-encoding" and value.strip().lower() != b"chunked":
                    coding = value.decode("latin-1")
                    detail = f"Transfer-Encoding {coding!r} is not supported: send the body plain or chunked"
                    raise Refusal(501, detail)
            return target_authority(self.url)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._pending is not None and self.cycle is not None and self.cycle.response_complete:
                refusal, self._pending = self._pending, None
                self._refuse(refusal)

        def _refuse(self, refusal: Refusal) -> None:
            self._disarm()
            if self._transport is None or self._transport.is_closing() or self._pending is not None:
                return
            cycle = self.cycle  # the last request whose head was accepted
            if cycle is not None and not cycle.more_body and not cycle.response_complete:
                # it arrived whole and is still being answered (pipelining): the refusal of the request after
                # it goes after its answer, in order (uvicorn wrote it at once, and a client read it as the
                # answer to its first request). A refusal inside its own body is its answer, at once.
                self._pending = refusal
                self.flow.pause_reading()
                return
            metrics.closed_connections.labels(refusal.reason).inc()
            self._transport.write(answer(refusal.status, refusal.detail))
            self._transport.close()

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
