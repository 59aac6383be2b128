"""Raw HTTP/1.1 over a socket for the transport-level probes of tests/serving/test_serving_hostile_http.py: what
an HTTP library would refuse to send (slow heads, broken framing, duplicated headers) and when the server
closes a connection."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from dataclasses import dataclass


@dataclass
class Reply:
    status: int | None  # None: the server closed the connection without an answer
    elapsed: float  # seconds from the first byte sent to the whole answer (or the close)
    raw: bytes

    @property
    def body(self) -> bytes:
        return self.raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.raw else b""


def request(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """One request as bytes: Host 127.0.0.1, ``Connection: close``, a Content-Length when there is a body."""
    fields = {"Host": "127.0.0.1", "Connection": "close"}
    if body:
        fields["Content-Length"] = str(len(body))
    fields.update(headers or {})
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return head.encode("latin-1") + body


def _complete(raw: bytes) -> bool:
    """A whole answer: its head and as many body bytes as its Content-Length (a 100 Continue aside)."""
    raw = re.sub(rb"^HTTP/1\.1 100 Continue\r\n\r\n", b"", raw)
    if b"\r\n\r\n" not in raw:
        return False
    head, body = raw.split(b"\r\n\r\n", 1)
    match = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
    return match is not None and len(body) >= int(match.group(1))


def exchange(port: int, data: bytes, timeout: float = 10.0, *, whole: bool = True) -> Reply:
    """Send ``data``, read until one whole answer (``whole``) or the server closes the connection."""
    started = time.monotonic()
    raw = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # the server may answer and close before taking everything: read its answer
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        try:
            while not (whole and _complete(raw)):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
        except ConnectionResetError:
            pass
    return Reply(status_of(raw), time.monotonic() - started, raw)


def status_of(raw: bytes) -> int | None:
    raw = re.sub(rb"^HTTP/1\.1 100 Continue\r\n\r\n", b"", raw)
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else None


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading and dropping what it sends), None if it did not."""
    started = time.monotonic()
    deadline = started + within
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic() - started
    return None
