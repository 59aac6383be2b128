"""Scenario 21 of docs/reliability.md: hostile clients at the HTTP level against ``hybridops serve`` in a process
of its own (scenario 18 is the JSON level): silent and slow connections, slow bodies, oversized heads, broken
framing, other methods and paths, a client that leaves mid-request. Each is answered fast (4xx, or the
connection closed by the deadline), never 500; ``/healthz`` and ``/predict`` keep answering others; the
admission gauges come back to zero and the log has no traceback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from http_support import closed_by_server, exchange, request
from load_support import metric
from serving_support import ServiceProcess, World, service_process

FLIGHT = {
    "carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", "tailnum": "N1",
    "sched_dep": "2013-01-31T16:00:00",
}  # fmt: skip
BODY = json.dumps({"flights": [FLIGHT]}).encode()
TIMEOUT = 2.0  # serving.request_timeout_seconds of this module's service (10 s by default)
FAST = 5.0


@pytest.fixture(scope="module")
def service(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    serving = world.settings.serving.model_copy(update={"request_timeout_seconds": TIMEOUT})
    log = tmp_path_factory.mktemp("hostile-http") / "serve.log"
    with service_process(world.with_(serving=serving), log) as running:
        yield running
        text = log.read_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-3000:]


def _port(service: ServiceProcess) -> int:
    return int(service.url.rsplit(":", 1)[1])


def _metrics(service: ServiceProcess) -> str:
    return requests.get(f"{service.url}/metrics", timeout=5).text


def _healthy(service: ServiceProcess) -> None:
    started = time.monotonic()
    assert requests.get(f"{service.url}/healthz", timeout=FAST).status_code == 200
    assert time.monotonic() - started < FAST


def _no_internal_error(service: ServiceProcess) -> None:
    text = _metrics(service)
    assert metric(text, 'hybridops_serving_errors_total{reason="internal"}') == 0
    assert metric(text, 'hybridops_serving_requests_total{status="500"}') == 0


def _slow_body(port: int) -> socket.socket:
    """A POST /predict whose head and first 10 body bytes are sent, the rest never."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(request("POST", "/predict", {"Content-Length": str(len(BODY))}) + BODY[:10])
    return sock


def _wait_for(service: ServiceProcess, name: str, value: float, within: float = FAST) -> None:
    deadline = time.monotonic() + within
    while metric(_metrics(service), name) != value:
        assert time.monotonic() < deadline, f"{name} != {value}: {metric(_metrics(service), name)}"
        time.sleep(0.05)


def test_slow_bodies_do_not_take_the_places_of_others(service: ServiceProcess) -> None:
    """20 clients (more than max_inflight_requests = 16) send a body one part and stop: before, every other
    /predict got 503 "at capacity" for as long as they liked; now others are answered and the slow ones are
    closed at the deadline, the gauges back to zero."""
    before = _metrics(service)
    slow = [_slow_body(_port(service)) for _ in range(20)]
    try:
        time.sleep(0.5)  # the 20 heads received
        started = time.monotonic()
        response = requests.post(f"{service.url}/predict", data=BODY, timeout=FAST)
        answered = time.monotonic() - started
        assert response.status_code == 200, response.text  # before: 503 "at capacity"
        assert metric(_metrics(service), "hybridops_serving_reading_requests") == 20
        _healthy(service)
        closed = [closed_by_server(sock, TIMEOUT + FAST) for sock in slow]
    finally:
        for sock in slow:
            sock.close()
    print(
        f"\n20 slow bodies: /predict 200 in {answered * 1000:.0f} ms; closed after at most {max(closed or [0]):.2f} s"
    )
    assert all(c is not None for c in closed), closed
    _wait_for(service, "hybridops_serving_reading_requests", 0)
    after = _metrics(service)
    assert metric(after, "hybridops_serving_inflight_requests") == 0
    name = 'hybridops_serving_closed_connections_total{reason="timeout"}'
    assert metric(after, name) - metric(before, name) >= 20
    name = 'hybridops_serving_errors_total{reason="disconnected"}'
    assert metric(after, name) - metric(before, name) == 20
    _no_internal_error(service)


def test_bodies_being_read_are_bounded(service: ServiceProcess, world: World) -> None:
    limit = world.settings.serving.max_reading_requests
    slow = [_slow_body(_port(service)) for _ in range(limit)]
    try:
        _wait_for(service, "hybridops_serving_reading_requests", limit)
        reply = exchange(_port(service), request("POST", "/predict", body=BODY))
        assert reply.status == 503 and b"retry-after: " in reply.raw.lower(), reply.raw[:300]
        assert reply.elapsed < FAST
        _healthy(service)
    finally:
        for sock in slow:
            sock.close()
    _wait_for(service, "hybridops_serving_reading_requests", 0)
    assert metric(_metrics(service), 'hybridops_serving_rejected_requests_total{reason="reading"}') >= 1
    assert requests.post(f"{service.url}/predict", data=BODY, timeout=FAST).status_code == 200


def _dribble(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    for i in range(len(data)):
        if stop.wait(0.2):
            return
        try:
            sock.sendall(data[i : i + 1])
        except OSError:
            return


@pytest.mark.parametrize(
    ("name", "first", "dribbled"),
    [
        ("silent connection", b"", b""),
        ("head one byte per 0.2 s", b"", request("GET", "/healthz", {"X-Pad": "x" * 200})),
        ("body never whole", request("POST", "/predict", {"Content-Length": "1000"}), b"{" * 1000),
        (
            "chunked body never ending",
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"1\r\n \r\n" * 200,
        ),
        (
            "GET answered, its body never ending",
            request("GET", "/healthz", {"Content-Length": "100000", "Connection": "keep-alive"}),
            b"x" * 1000,
        ),
    ],
)
def test_a_request_must_arrive_within_the_deadline(
    service: ServiceProcess, name: str, first: bytes, dribbled: bytes
) -> None:
    """Before, each of these held its connection open indefinitely (still open after 30 s)."""
    stop = threading.Event()
    with socket.create_connection(("127.0.0.1", _port(service)), timeout=30) as sock:
        sock.sendall(first)
        thread = threading.Thread(target=_dribble, args=(sock, dribbled, stop))
        thread.start()
        try:
            closed = closed_by_server(sock, TIMEOUT + FAST)
            _healthy(service)
        finally:
            stop.set()
            thread.join()
    print(f"\n{name}: closed after {closed} s")
    assert closed is not None and closed < TIMEOUT + FAST
    _wait_for(service, "hybridops_serving_reading_requests", 0)
    _no_internal_error(service)


def test_hundreds_of_idle_connections(service: ServiceProcess) -> None:
    """300 connections that never send a byte and 300 kept alive after one answer: others are answered
    meanwhile, the kept-alive ones are closed by uvicorn's keep-alive timeout (5 s), the silent ones by the
    deadline (before: never)."""
    port = _port(service)
    opened = time.monotonic()
    silent = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(300)]
    kept = []
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        kept.append(sock)
    try:
        started = time.monotonic()
        assert requests.post(f"{service.url}/predict", data=BODY, timeout=FAST).status_code == 200
        answered = time.monotonic() - started
        _healthy(service)
        closed = [closed_by_server(sock, 5 + TIMEOUT + FAST) for sock in silent + kept]
    finally:
        for sock in silent + kept:
            sock.close()
    print(
        f"\n600 idle connections: /predict 200 in {answered * 1000:.0f} ms; all closed by the server "
        f"{time.monotonic() - opened:.2f} s after the first opened"
    )
    assert all(c is not None for c in closed)


def test_a_client_leaving_mid_body_is_not_an_internal_error(service: ServiceProcess) -> None:
    """Before: 500 counted (errors_total{reason="internal"}), two tracebacks in the log per client."""
    before = _metrics(service)
    for _ in range(5):
        sock = _slow_body(_port(service))
        time.sleep(0.05)
        sock.close()
    name = 'hybridops_serving_errors_total{reason="disconnected"}'
    deadline = time.monotonic() + FAST
    while metric(_metrics(service), name) - metric(before, name) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    after = _metrics(service)
    assert metric(after, "hybridops_serving_reading_requests") == 0
    assert metric(after, "hybridops_serving_inflight_requests") == 0
    _no_internal_error(service)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("64 KB header", request("GET", "/healthz", {"X-Big": "a" * 65536})),
        ("1 MB header", request("GET", "/healthz", {"X-Big": "a" * 1024 * 1024})),
        ("10,000 headers", request("GET", "/healthz", {f"X-H{i}": "v" for i in range(10_000)})),
        ("1 MB query string", request("POST", "/predict?" + "a" * 1024 * 1024, body=BODY)),
    ],
)
def test_oversized_heads_are_refused(service: ServiceProcess, name: str, data: bytes) -> None:
    """Before, a 1 MB header and 10,000 headers were answered 200 (the parser has no bound)."""
    reply = exchange(_port(service), data)
    print(f"\n{name}: {reply.status} in {reply.elapsed * 1000:.0f} ms")
    assert reply.status == 431 and b"max_head_bytes" in reply.body, reply.raw[:300]
    assert reply.elapsed < FAST
    _healthy(service)


def test_a_head_under_the_limit_is_answered(service: ServiceProcess) -> None:
    reply = exchange(_port(service), request("GET", "/healthz", {"X-Big": "a" * 16_000}))
    assert reply.status == 200


def test_two_host_headers_are_400(service: ServiceProcess) -> None:
    """Before, the first Host was checked and the request answered 200 whatever the second said."""
    data = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    reply = exchange(_port(service), data)
    assert reply.status == 400 and b"Host headers" in reply.body


CHUNKED = (
    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
)
PROBES = [
    ("pipelining 3 requests", request("GET", "/healthz", {"Connection": "keep-alive"}) * 2
     + request("GET", "/healthz"), {200}),
    ("chunked body", CHUNKED + f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n\r\n", {200}),
    ("chunked body over max_body_bytes", CHUNKED + (b"100000\r\n" + b" " * 0x100000 + b"\r\n") * 3, {413}),
    ("Content-Length shorter than the body", request("POST", "/predict", {"Content-Length": str(len(BODY) - 5)},
     BODY), {422}),
    ("Content-Length and Transfer-Encoding", b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("two Content-Length", b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6"
     b"\r\n\r\nabcdef", {400}),
    ("negative Content-Length", b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n", {400}),
    ("Expect: 100-continue, 1 GB declared", request("POST", "/predict", {"Content-Length": "1000000000",
     "Expect": "100-continue"}), {413}),
    ("Expect: 100-continue", request("POST", "/predict", {"Content-Length": str(len(BODY)),
     "Expect": "100-continue"}) + BODY, {200}),
    ("no Content-Type", request("POST", "/predict", body=BODY), {200}),
    ("Content-Type text/plain", request("POST", "/predict", {"Content-Type": "text/plain"}, BODY), {200}),
    ("Content-Encoding gzip (not gzipped)", request("POST", "/predict", {"Content-Encoding": "gzip"}, BODY), {415}),
    *[(f"{m} {route}", request(m, route, body=BODY if m in ("PUT", "PATCH", "DELETE") else b""),
       {200} if m == "HEAD" and route != "/predict" else {405})
      for route in ("/predict", "/healthz", "/readyz", "/metrics")
      for m in ("PUT", "DELETE", "TRACE", "OPTIONS", "HEAD", "PATCH", "CONNECT")],
    ("GET /predict", request("GET", "/predict"), {405}),
    ("POST /healthz", request("POST", "/healthz", body=BODY), {405}),
    ("unknown method FOO", request("FOO", "/predict"), {400}),
    ("unknown route", request("GET", "/admin"), {404}),
    ("POST /predict/", request("POST", "/predict/", body=BODY), {307}),
    ("POST /x/../predict", request("POST", "/x/../predict", body=BODY), {404}),
    ("GET /%2e%2e/%2e%2e/etc/passwd", request("GET", "/%2e%2e/%2e%2e/etc/passwd"), {404}),
    ("POST /%70redict (percent-encoded)", request("POST", "/%70redict", body=BODY), {200}),
    ("POST /predict%00", request("POST", "/predict%00", body=BODY), {404}),
    ("foreign Host", request("GET", "/metrics", {"Host": "evil.example"}), {400}),
    ("no Host", b"GET /metrics HTTP/1.0\r\n\r\n", {400}),
    ("non-UTF-8 query string", b"GET /healthz?\xff\xfe=\xc0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", {400}),
    ("non-UTF-8 header value", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: \xff\xc0\r\nConnection: close"
     b"\r\n\r\n", {200}),
    ("NUL in a header", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n", {400}),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400}),
    ("TLS ClientHello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 100, {400}),
    ("WebSocket upgrade", request("GET", "/predict", {"Upgrade": "websocket", "Connection": "Upgrade",
     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}), {403}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "statuses"), PROBES, ids=[p[0] for p in PROBES])
def test_transport_probes(service: ServiceProcess, name: str, data: bytes, statuses: set[int]) -> None:
    pipelined = name.startswith("pipelining")
    reply = exchange(_port(service), data, whole=not pipelined)  # pipelined: read until the server closes
    print(f"\n{name}: {reply.status} in {reply.elapsed * 1000:.0f} ms")
    assert reply.status in statuses, reply.raw[:300]
    assert reply.elapsed < FAST
    if pipelined:
        assert reply.raw.count(b"HTTP/1.1 200") == 3 and reply.raw.count(b'{"status":"ok"}') == 3
    if "Expect" in name and reply.status == 413:
        assert b"100 Continue" not in reply.raw  # refused without inviting the gigabyte
    _healthy(service)


def _flights(text: str) -> bytes:
    return b'{"flights": [' + text.encode() + b"]}"


FIELD = json.dumps(FLIGHT)
JSON_PROBES = [
    # the first "flights" (empty) would be 422: a 200 shows that the last one wins
    ("duplicated key (the last wins)", b'{"flights": [], "flights": [' + FIELD.encode() + b"]}", {200}),
    ("integer 10**400 in flight", _flights(FIELD.replace("1545", "1" + "0" * 400)), {422}),
    ("integer 10**5000 in flight", _flights(FIELD.replace("1545", "1" + "0" * 5000)), {422}),
    ("100,000-deep array in carrier", _flights(FIELD.replace('"UA"', "[" * 100_000 + "]" * 100_000)), {422}),
    ("escaped NUL in carrier", _flights(FIELD.replace('"UA"', '"U\\u0000"')), {200}),
    ("lone surrogate in tailnum", _flights(FIELD.replace('"N1"', '"\\udfff"')), {422}),
    ("UTF-8-encoded surrogate in carrier", _flights(FIELD).replace(b'"UA"', b'"\xed\xb3\xbf"'), {422}),
    ("1545.0 in flight", _flights(FIELD.replace("1545", "1545.0")), {200}),
    ("1545.5 in flight", _flights(FIELD.replace("1545", "1545.5")), {422}),
    ('"1545" in flight', _flights(FIELD.replace("1545", '"1545"')), {200}),
    ("byte-order mark", b"\xef\xbb\xbf" + BODY, {422}),
    ("UTF-16 body", BODY.decode().encode("utf-16"), {422}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body", "statuses"), JSON_PROBES, ids=[p[0] for p in JSON_PROBES])
def test_json_probes(service: ServiceProcess, name: str, body: bytes, statuses: set[int]) -> None:
    reply = exchange(_port(service), request("POST", "/predict", {"Content-Type": "application/json"}, body))
    print(f"\n{name}: {reply.status} in {reply.elapsed * 1000:.0f} ms {reply.body[:120]!r}")
    assert reply.status in statuses, reply.raw[:300]
    assert reply.elapsed < FAST
    if reply.status == 422:
        assert json.loads(reply.body)["detail"]
    _healthy(service)


def test_no_internal_error_after_all_probes(service: ServiceProcess) -> None:
    _no_internal_error(service)
    text = _metrics(service)
    assert metric(text, "hybridops_serving_reading_requests") == 0
    assert metric(text, "hybridops_serving_inflight_requests") == 0


def test_the_limits_refuse_a_uvicorn_they_were_not_written_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """The request limits override uvicorn's own protocol callbacks: another version could leave a request
    unbounded without a word, so the service refuses to start instead."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from hybridops.serving import http_limits

    http_limits.check_uvicorn()  # the pinned version passes
    monkeypatch.setattr(uvicorn, "__version__", "0.99.0")
    with pytest.raises(http_limits.ProtocolAdapterError, match=r"need uvicorn 0\.54\.0, found 0\.99\.0"):
        http_limits.check_uvicorn()
    monkeypatch.setattr(uvicorn, "__version__", http_limits.UVICORN_VERSION)
    monkeypatch.delattr(HttpToolsProtocol, "on_headers_complete")
    with pytest.raises(http_limits.ProtocolAdapterError, match="lacks on_headers_complete"):
        http_limits.check_uvicorn()
