"""Scenario 21 of docs/reliability.md, second round: request targets, framing and bodies that the first round
(tests/serving/test_serving_hostile_http.py) did not send, against ``hybridops serve`` in a process of its
own. Each answer is fast, 4xx/5xx with a JSON body naming what to fix (never uvicorn's plain text, never
500), and the service answers ``/healthz`` and a normal ``/predict`` right after."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import requests
from http_support import exchange, request
from load_support import metric
from serving_support import ServiceProcess, World, service_process

FLIGHT = {
    "carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", "tailnum": "N1",
    "sched_dep": "2013-01-31T16:00:00",
}  # fmt: skip
BODY = json.dumps({"flights": [FLIGHT]}).encode()
FAST = 5.0
HOST = b"Host: 127.0.0.1\r\nConnection: close\r\n"


@pytest.fixture(scope="module")
def service(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("hostile-framing") / "serve.log"
    with service_process(world.settings, log) as running:
        yield running
        text = log.read_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-3000:]


def _port(service: ServiceProcess) -> int:
    return int(service.url.rsplit(":", 1)[1])


def _still_serving(service: ServiceProcess) -> None:
    assert requests.get(f"{service.url}/healthz", timeout=FAST).status_code == 200
    response = requests.post(f"{service.url}/predict", data=BODY, timeout=FAST)
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1, response.text[:300]


def _post(headers: bytes, body: bytes) -> bytes:
    return b"POST /predict HTTP/1.1\r\n" + HOST + headers + b"\r\n" + body


def _chunked(te: bytes) -> bytes:
    return _post(b"Transfer-Encoding: " + te + b"\r\n", b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY))


_FOREIGN = b"serving.allowed_hosts"
_MALFORMED = b"malformed HTTP/1.1 request: "
PROBES = [
    # absolute-form targets (RFC 9112 3.2.2): before, the target's host was never checked (200)
    ("absolute-form, foreign host", b"GET http://evil.example/healthz HTTP/1.1\r\n" + HOST + b"\r\n", 400,
     b"request target's host 'evil.example' is not served here"),
    ("absolute-form /predict, foreign host", b"POST http://evil.example/predict HTTP/1.1\r\n" + HOST
     + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY, 400, _FOREIGN),
    ("absolute-form https, foreign host and port", b"GET https://evil.example:443/healthz HTTP/1.1\r\n" + HOST
     + b"\r\n", 400, b"'evil.example:443'"),
    ("absolute-form with user info", b"GET http://127.0.0.1@evil.example/healthz HTTP/1.1\r\n" + HOST + b"\r\n",
     400, b"has user info"),
    ("absolute-form, other scheme", b"GET foo://evil.example/healthz HTTP/1.1\r\n" + HOST + b"\r\n", 400,
     b"http(s)://host/path"),
    ("absolute-form without a path", b"GET http://evil.example HTTP/1.1\r\n" + HOST + b"\r\n", 400,
     b"is not such a URL"),
    ("absolute-form, port not a number", b"GET http://127.0.0.1:x/healthz HTTP/1.1\r\n" + HOST + b"\r\n", 400,
     b"as host or host:port"),
    ("absolute-form, loopback host", b"GET http://127.0.0.1/healthz HTTP/1.1\r\n" + HOST + b"\r\n", 200, b"ok"),
    ("absolute-form, loopback host, foreign Host header", b"GET http://127.0.0.1/healthz HTTP/1.1\r\n"
     b"Host: evil.example\r\n\r\n", 400, b"Host 'evil.example'"),
    ("authority-form CONNECT", b"CONNECT evil.example:443 HTTP/1.1\r\n" + HOST + b"\r\n", 400,
     b"is not such a URL"),
    # HEAD on the GET routes: before 405
    *[(f"HEAD {route}", b"HEAD " + route.encode() + b" HTTP/1.1\r\n" + HOST + b"\r\n", 200, b"")
      for route in ("/healthz", "/readyz", "/metrics")],
    # Host values that are not host[:port] (RFC 9112 3.2): before, '127.0.0.1:abc' was 200
    ("Host with a non-numeric port", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:abc\r\n\r\n", 400,
     b"as host or host:port"),
    ("Host with user info", b"GET /healthz HTTP/1.1\r\nHost: evil.example@127.0.0.1\r\n\r\n", 400,
     b"as host or host:port"),
    ("Host list", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1, evil.example\r\n\r\n", 400, b"as host or host:port"),
    ("empty Host", b"GET /healthz HTTP/1.1\r\nHost:\r\n\r\n", 400, b"as host or host:port"),
    # framing the parser refuses: before 400 text/plain "Invalid HTTP request received." (no cause named)
    ("Content-Length +N", _post(b"Content-Length: +%d\r\n" % len(BODY), BODY), 400,
     _MALFORMED + b"Invalid character in Content-Length"),
    ("Content-Length as a list", _post(b"Content-Length: %d, %d\r\n" % (len(BODY), len(BODY)), BODY), 400,
     b"Invalid character in Content-Length"),
    ("Content-Length over 2**64", _post(b"Content-Length: 18446744073709551617\r\n", BODY), 400,
     b"Content-Length overflow"),
    ("the same Content-Length twice", _post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"abcde"), 400,
     b"Duplicate Content-Length"),
    ("Content-Length and Transfer-Encoding", _post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
     b"0\r\n\r\n"), 400, b"Transfer-Encoding can't be present with Content-Length"),
    ("Transfer-Encoding chunked twice", _chunked(b"chunked\r\nTransfer-Encoding: chunked"), 400,
     b"Transfer-Encoding"),
    ("Transfer-Encoding chunked, gzip", _chunked(b"chunked, gzip"), 400, b"Transfer-Encoding"),
    ("chunk size over 2**64", _post(b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffffff\r\n" + BODY), 400,
     b"Chunk size overflow"),
    ("chunk size shorter than its data", _post(b"Transfer-Encoding: chunked\r\n", b"5\r\n" + BODY
     + b"\r\n0\r\n\r\n"), 400, b"Expected LF after chunk data"),
    ("chunk lines ending in bare LF", _post(b"Transfer-Encoding: chunked\r\n", b"%x\n%s\n0\n\n"
     % (len(BODY), BODY)), 400, b"Missing expected CR"),
    ("obs-fold header line", b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-A: a\r\n b\r\n\r\n", 400,
     b"Unexpected whitespace after header value"),
    ("obs-fold Host", b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\n 127.0.0.1\r\n\r\n", 400, _MALFORMED),
    ("bare LF line endings", b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n", 400, b"Expected CRLF after version"),
    ("space before the colon", b"GET /healthz HTTP/1.1\r\nHost : evil.example\r\n\r\n", 400,
     b"Invalid header token"),
    ("NUL in Host", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\x00.evil\r\n\r\n", 400,
     b"Invalid header value char"),
    ("lower-case method", b"get /healthz HTTP/1.1\r\n" + HOST + b"\r\n", 400, b"Invalid method"),
    ("raw 0xff in the path", b"GET /health\xff HTTP/1.1\r\n" + HOST + b"\r\n", 400, b"Invalid char in url"),
    ("HTTP/2 connection preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, b"HTTP/2 preface"),
    ("HTTP/1.2", b"GET /healthz HTTP/1.2\r\n" + HOST + b"\r\n", 400, b"Invalid HTTP version"),
    # before: 200 (HTTP/2.0 in an HTTP/1 request line) and a Host error (HTTP/0.9)
    ("HTTP/2.0 request line", b"GET /healthz HTTP/2.0\r\n" + HOST + b"\r\n", 505, b"send HTTP/1.1"),
    ("HTTP/0.9 request line", b"GET /healthz\r\n\r\n", 505, b"send HTTP/1.1"),
    # before: 200, the gzip-coded body read as plain JSON
    ("Transfer-Encoding gzip, chunked", _chunked(b"gzip, chunked"), 501, b"Transfer-Encoding 'gzip, chunked'"),
    ("Transfer-Encoding identity", _post(b"Transfer-Encoding: identity\r\n", BODY), 501, b"'identity'"),
    # before: 400 text/plain (uvicorn's URL parser fails on a target over 64 KB)
    ("100 KB URL", b"GET /healthz?" + b"a" * 100_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 431,
     b"serving.max_head_bytes"),
    ("10,000 query parameters", b"GET /healthz?" + b"&".join(b"a%d=1" % i for i in range(10_000))
     + b" HTTP/1.1\r\n" + HOST + b"\r\n", 431, b"serving.max_head_bytes"),
    # before: 422 "Invalid JSON: expected value" (gzip) and 200 (br, not compressed): never inflated
    ("gzip-encoded body", _post(b"Content-Encoding: gzip\r\nContent-Length: 30\r\n", b"\x1f\x8b" + b"\x00" * 28),
     415, b"Content-Encoding 'gzip' is not accepted"),
    ("Content-Encoding br", _post(b"Content-Encoding: br\r\nContent-Length: %d\r\n" % len(BODY), BODY), 415,
     b"uncompressed"),
    ("Content-Encoding identity", _post(b"Content-Encoding: identity\r\nContent-Length: %d\r\n" % len(BODY),
     BODY), 200, b"predictions"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "status", "says"), PROBES, ids=[p[0] for p in PROBES])
def test_framing_probes(service: ServiceProcess, name: str, data: bytes, status: int, says: bytes) -> None:
    reply = exchange(_port(service), data)
    print(f"\n{name}: {reply.status} in {reply.elapsed * 1000:.0f} ms {reply.body[:150]!r}")
    assert reply.status == status, reply.raw[:400]
    assert says in reply.body, reply.raw[:400]
    assert reply.elapsed < FAST
    if status >= 400:
        assert b"content-type: application/json" in reply.raw.lower()
        assert json.loads(reply.body)["detail"]
    if name.startswith("HEAD"):
        assert reply.body == b"" and b"content-length: " in reply.raw.lower()
    _still_serving(service)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("10,001 empty flights (30 KB)", b'{"flights": [' + b",".join([b"{}"] * 10_001) + b"]}"),
        (
            "100,000 unknown keys (1 MB)",
            b'{"flights": [], ' + b",".join(b'"k%d": 1' % i for i in range(100_000)) + b"}",
        ),
    ],
)
def test_a_422_lists_a_bounded_number_of_errors(service: ServiceProcess, name: str, body: bytes) -> None:
    """Before: every error was listed, a 30 KB body got a 3.9 MB answer (50,005 errors) in 384 ms, a 1 MB one
    8.7 MB in 596 ms."""
    reply = exchange(_port(service), request("POST", "/predict", body=body))
    answer = json.loads(reply.body)
    print(f"\n{name}: {reply.status}, {len(reply.body):,} bytes in {reply.elapsed * 1000:.0f} ms")
    assert reply.status == 422
    assert len(answer["errors"]) == 20 and "errors, the first 20 listed" in answer["detail"]
    assert len(reply.body) < 5000
    assert reply.elapsed < FAST
    _still_serving(service)


def test_refusals_are_counted_and_nothing_was_internal(service: ServiceProcess) -> None:
    exchange(_port(service), b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n")
    text = requests.get(f"{service.url}/metrics", timeout=FAST).text
    assert metric(text, 'hybridops_serving_closed_connections_total{reason="malformed"}') >= 1
    assert metric(text, 'hybridops_serving_closed_connections_total{reason="head_too_large"}') >= 1
    assert metric(text, 'hybridops_serving_errors_total{reason="internal"}') == 0
    assert metric(text, 'hybridops_serving_requests_total{status="500"}') == 0


KEPT = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PREDICT = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
PIPELINES = [
    # before: the refusal was written at once, ahead of the first answer, which was lost
    ("a request, then one in bare LF", KEPT + b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n", [200, 400]),
    ("/predict, then one in bare LF", PREDICT + b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n", [200, 400]),
    ("a request, then HTTP/2.0", KEPT + b"GET /healthz HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", [200, 505]),
    ("two requests, then a head over the limit", KEPT + KEPT + b"GET /healthz HTTP/1.1\r\nX: "
     + b"a" * 40_000 + b"\r\n\r\n", [200, 200, 431]),
    # already in order (the refusal comes from the app, after uvicorn's own pipeline)
    ("a request, then a foreign absolute-form one", KEPT + b"GET http://evil.example/healthz HTTP/1.1\r\n"
     b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n", [200, 400]),
    ("two /predict and a /healthz", PREDICT + PREDICT + request("GET", "/healthz"), [200, 200, 200]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "statuses"), PIPELINES, ids=[p[0] for p in PIPELINES])
def test_pipelined_requests_are_answered_in_order(
    service: ServiceProcess, name: str, data: bytes, statuses: list[int]
) -> None:
    reply = exchange(_port(service), data, whole=False)  # read until the server closes
    answered = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply.raw)]
    print(f"\n{name}: {answered} in {reply.elapsed * 1000:.0f} ms")
    assert answered == statuses, reply.raw[:600]
    assert reply.elapsed < FAST
    _still_serving(service)
