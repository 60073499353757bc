# SPDX-License-Identifier: Apache-2.0
"""CORS for browser clients on other origins.

An empty allowlist means same origin only: no ``Access-Control-*`` header is ever sent,
so browsers refuse cross-origin reads. ``*`` is accepted only in DEBUG (the constructor
refuses it otherwise). Preflights from allowed origins get 204 here, before trusted-host,
auth and the routes, with the methods and request headers the API uses; preflights from
other origins get a 403 problem. Actual requests from allowed origins get the origin
echoed, ``Vary: Origin`` and ``Access-Control-Expose-Headers`` naming the headers a
script may read (``X-Request-ID``, the rate-limit headers, ``traceresponse`` when tracing
is on). With gRPC-Web served, preflights also allow its request headers
(``x-grpc-web``, ``x-user-agent``, ``grpc-timeout``) and responses expose
``grpc-status`` and ``grpc-message``, which a browser's gRPC-Web client must read when a
call fails before its first message. A browser's tracing library may send
``traceparent`` / ``tracestate``; whether they are believed is
``TRUST_INCOMING_TRACE``'s decision, not the origin's. No credentials: the API
authenticates with headers, never cookies.

Fast path: a request without ``Origin`` (servers, curl, same-origin GETs) costs one scan.
"""

from __future__ import annotations

from collections.abc import Iterable

from genkit_endpoints.core.errors import Forbidden
from genkit_endpoints.http.middleware.errors import request_path, send_problem
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send

_ORIGIN = b"origin"
_REQUEST_METHOD = b"access-control-request-method"
_REQUEST_HEADERS = b"access-control-request-headers"
ALLOW_METHODS = ("GET", "POST", "OPTIONS")
ALLOW_HEADERS = (
    "accept",
    "authorization",
    "cache-control",
    "content-type",
    "last-event-id",
    "traceparent",
    "tracestate",
    "x-api-key",
    "x-request-id",
)
EXPOSE_HEADERS = (
    "x-request-id",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "traceresponse",
)
GRPC_WEB_ALLOW_HEADERS = ("x-grpc-web", "x-user-agent", "grpc-timeout")
GRPC_WEB_EXPOSE_HEADERS = ("grpc-status", "grpc-message")
MAX_AGE = 600


class CorsDenied(Forbidden):
    default_detail = "Cross-origin requests from this origin are not allowed."


class CorsMiddleware:
    def __init__(
        self, app: ASGIApp, origins: Iterable[str], *, debug: bool = False, grpc_web: bool = False
    ) -> None:
        allowed = {o.strip().rstrip("/") for o in origins if o.strip()}
        if "*" in allowed and not debug:
            raise ValueError("CORS_ALLOWED_ORIGINS='*' is only allowed with DEBUG")
        self.app = app
        self.any_origin = "*" in allowed
        self.origins = frozenset(o.lower().encode("latin-1") for o in allowed - {"*"})
        allow: tuple[str, ...] = ALLOW_HEADERS
        expose: tuple[str, ...] = EXPOSE_HEADERS
        if grpc_web:
            allow, expose = allow + GRPC_WEB_ALLOW_HEADERS, expose + GRPC_WEB_EXPOSE_HEADERS
        self.allow_headers = frozenset(allow)
        self.simple = [
            (b"access-control-expose-headers", ", ".join(expose).encode()),
            (b"vary", b"Origin"),
        ]
        self.preflight = [
            (b"access-control-allow-methods", ", ".join(ALLOW_METHODS).encode()),
            (b"access-control-max-age", str(MAX_AGE).encode()),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]

    def allows(self, origin: bytes) -> bool:
        return self.any_origin or origin.lower() in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = None
        for name, value in scope["headers"]:
            if name == _ORIGIN:
                origin = value
                break
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and _header(scope, _REQUEST_METHOD) is not None:
            await self._preflight(scope, origin, send)
            return
        if not self.allows(origin):
            await self.app(scope, receive, send)  # no CORS headers: the browser blocks
            return
        echoed = [(b"access-control-allow-origin", b"*" if self.any_origin else origin)]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *echoed, *self.simple]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, origin: bytes, send: Send) -> None:
        method = (_header(scope, _REQUEST_METHOD) or b"").decode("latin-1").strip().upper()
        if not self.allows(origin) or method not in ALLOW_METHODS:
            await send_problem(send, CorsDenied(), request_path(scope))
            return
        requested = (_header(scope, _REQUEST_HEADERS) or b"").decode("latin-1").lower()
        names = [h.strip() for h in requested.split(",") if h.strip()]
        if any(n not in self.allow_headers for n in names):
            await send_problem(
                send, CorsDenied("A requested header is not allowed."), request_path(scope)
            )
            return
        headers = [
            (b"access-control-allow-origin", b"*" if self.any_origin else origin),
            *self.preflight,
        ]
        if names:
            headers.append((b"access-control-allow-headers", ", ".join(names).encode()))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            value_: bytes = value
            return value_
    return None
