"""The Host check of the service (ASGI middleware), in front of every route.

A browser page whose DNS name is rebound to the service's address (or a proxy that forwards any Host)
would otherwise reach ``/predict`` and ``/metrics`` under a foreign name. Only loopback names and
``serving.allowed_hosts`` are answered; any other name gets 400 with a JSON body naming the setting, and so
does a request with more than one Host header, or a Host that is not ``host[:port]`` (RFC 9112 section 3.2).

A request may also name its host in an absolute-form target (``GET http://evil.example/predict``): RFC 9112
3.2.2 says that name replaces Host. uvicorn keeps only the target's path in the ASGI scope, so the protocol
adapter (:mod:`hybridops.serving.http_limits`) puts the target's authority in the scope as an ASGI
extension, ``scope["extensions"][TARGET_AUTHORITY]["authority"]``; it is checked like Host, and so is the Host header beside it: every name a
request gives must be served here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = ("localhost", "127.0.0.1", "::1")
TARGET_AUTHORITY = "hybridops.target_authority"
_SETTING = "serving.allowed_hosts (HYBRIDOPS_SERVING__ALLOWED_HOSTS)"
# RFC 3986 host (reg-name or IPv4, or an IP literal in brackets) and an optional decimal port
_AUTHORITY = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._~!$&'()*+,;=%-]+)(:[0-9]{0,5})?", re.IGNORECASE)


def host_name(header: str) -> str:
    """The name or address of a Host header, without its port, lower case (IPv6 without brackets)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def valid_authority(value: str) -> bool:
    """``host[:port]`` as RFC 3986 writes it (no userinfo, path, list or space), a port up to 65535."""
    match = _AUTHORITY.fullmatch(value.strip())
    if match is None:
        return False
    port = (match.group(2) or ":")[1:]
    return not port or int(port) < 65536


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

    def problem(self, scope: Scope) -> str | None:
        """Why the request's host is refused, or None."""
        hosts = [v.decode("latin-1") for k, v in scope["headers"] if k == b"host"]
        if len(hosts) > 1:
            # RFC 9112 3.2: answer 400; a proxy in front may have routed by another one than we check
            return f"{len(hosts)} Host headers ({', '.join(map(repr, hosts))}): send exactly one."
        target = ((scope.get("extensions") or {}).get(TARGET_AUTHORITY) or {}).get("authority")
        named = [("request target's host", target)] if target is not None else []
        if hosts or target is None:
            named.append(("Host", hosts[0] if hosts else ""))
        for what, value in named:
            if not valid_authority(value):
                shown = "no Host header" if what == "Host" and not hosts else f"{what} {value!r}"
                return f"{shown}: send the name the service is reached by, as host or host:port."
            if not self.allows(value):
                return (
                    f"{what} {value!r} is not served here: add it to {_SETTING} if clients reach the "
                    "service by that name."
                )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            detail = self.problem(scope)
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
