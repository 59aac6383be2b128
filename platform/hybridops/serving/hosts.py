"""The Host header check of the service (ASGI middleware), in front of every route.

A browser page whose DNS name is rebound to the service's address (or a proxy that forwards any Host)
would otherwise reach ``/predict`` and ``/metrics`` under a foreign name. Only loopback names and
``serving.allowed_hosts`` are answered; any other Host gets 400 with a JSON body naming the setting, and so
does a request with more than one Host header (RFC 9112 section 3.2).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = ("localhost", "127.0.0.1", "::1")


def host_name(header: str) -> str:
    """The name or address of a Host header, without its port, lower case (IPv6 without brackets)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheck:
    """Answer 400 to requests whose Host is neither loopback nor in ``allowed`` (``*``, ``*.suffix``)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        names = [host_name(name) if not name.startswith("*") else name.lower() for name in allowed]
        self.any = "*" in names
        self.exact = set(LOOPBACK) | {name for name in names if not name.startswith("*")}
        self.suffixes = tuple(name[1:] for name in names if name.startswith("*."))

    def allows(self, header: str) -> bool:
        name = host_name(header)
        return self.any or name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            hosts = [v.decode("latin-1") for k, v in scope["headers"] if k == b"host"]
            header = hosts[0] if hosts else ""
            detail = None
            if len(hosts) > 1:
                # RFC 9112 3.2: answer 400; a proxy in front may have routed by another one than we check
                detail = f"{len(hosts)} Host headers ({', '.join(map(repr, hosts))}): send exactly one."
            elif not self.allows(header):
                detail = (
                    f"Host {header!r} is not served here: add it to serving.allowed_hosts "
                    "(HYBRIDOPS_SERVING__ALLOWED_HOSTS) if clients reach the service by that name."
                )
            if detail is not None:
                body = orjson.dumps({"detail": detail, "errors": []})
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body)),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
