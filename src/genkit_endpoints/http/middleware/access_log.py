"""Access log: one line per request, with the status as actually sent.

Fields: method, route (the route *template* — ``/flows/{name}``, never the raw path with
its query string, so no secret or unbounded value reaches the log), status, duration in
ms, bytes sent, request id (added by the log processors), client ip (after
``ProxyHeadersMiddleware``), and the principal's name when an API key authenticated the
request (never the key). It sits outside every middleware that can answer, so 401s,
413s, 429s and 504s are logged with the status the client saw; a request that ended
without a response (client gone) is logged with status 499.

Cheap by construction: the logger is bound once, the level is checked once per request,
and the send wrapper only looks at the two message types it needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from genkit_endpoints.core.context import PRINCIPAL_SCOPE_KEY
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send

LOGGER_NAME = "genkit_endpoints.access"
UNMATCHED = "<unmatched>"
CLIENT_GONE = 499  # nginx's convention for "client closed the request"


def route_templates(
    paths: Iterable[str], prefixes: Iterable[tuple[str, str]] = ()
) -> Callable[[str], str]:
    """A path → template function: exact ``paths``, or ``(prefix, template)`` pairs."""
    exact = frozenset(paths)
    by_prefix = tuple(prefixes)

    def template(path: str) -> str:
        if path in exact:
            return path
        for prefix, name in by_prefix:
            if path.startswith(prefix):
                return name
        return UNMATCHED  # unbounded values never become log fields (or metric labels)

    return template


class AccessLogMiddleware:
    """``logger``: a structlog-style logger (``genkit_endpoints.serving.logging.access_logger``);
    the level is the stdlib one of ``genkit_endpoints.access`` either way."""

    def __init__(
        self, app: ASGIApp, template: Callable[[str], str], logger: Any | None = None
    ) -> None:
        self.app = app
        self.template = template
        self.stdlib = logging.getLogger(LOGGER_NAME)
        self.log = logger if logger is not None else structlog.get_logger(LOGGER_NAME)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.stdlib.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        # [status, bytes]; a list keeps the closure cheap.
        sent = [CLIENT_GONE, 0]

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                sent[1] += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                sent[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            client = scope.get("client")
            self.log.info(
                "request",
                method=scope["method"],
                route=self.template(scope["path"]),
                status=sent[0],
                duration_ms=round((time.perf_counter() - start) * 1000, 3),
                bytes=sent[1],
                client_ip=client[0] if client else None,
                principal=scope.get(PRINCIPAL_SCOPE_KEY),
            )
