# SPDX-License-Identifier: Apache-2.0
"""``GET /metrics``: the Prometheus scrape, answered before auth, limits and host checks.

Scrapers are infrastructure, like probes: an API key, a rate limit, the concurrency cap
or the trusted-host list (a scraper addresses the pod by IP) must never hide the
service's own metrics when it needs watching most. It has its own optional credential,
``METRICS_KEY`` (``Authorization: Bearer <key>``, compared in constant time), never one
of the API keys: a scraper's credential should open the metrics and nothing else. The
body is the Prometheus text format, or OpenMetrics when ``Accept`` asks for it.
"""

from __future__ import annotations

import asyncio
import hmac

from genkit_endpoints.core.errors import MethodNotAllowed, Unauthenticated
from genkit_endpoints.http.middleware.errors import request_path, send_problem
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from genkit_endpoints.telemetry.metrics import PrometheusMetrics

__all__ = ["METRICS_PATH", "MetricsEndpointMiddleware"]

METRICS_PATH = "/metrics"
_BEARER = b"bearer "
_ALLOWED = ("GET", "HEAD")


class MetricsUnauthenticated(Unauthenticated):
    default_detail = "The metrics key is required."


class MetricsEndpointMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: PrometheusMetrics,
        *,
        key: str | None = None,
        path: str = METRICS_PATH,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.path = path
        self._key = key.encode() if key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in _ALLOWED:
            await send_problem(send, MethodNotAllowed(_ALLOWED), request_path(scope))
            return
        accept = ""
        authorization = b""
        for name, value in scope["headers"]:
            if name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value
        if self._key is not None and not self._authorized(authorization):
            err = MetricsUnauthenticated(headers={"www-authenticate": 'Bearer realm="metrics"'})
            await send_problem(send, err, request_path(scope))
            return
        if self.metrics.multiprocess_dir is None:
            body, content_type = self.metrics.render(accept)
        else:
            # Reads every worker's files: off the event loop.
            body, content_type = await asyncio.to_thread(self.metrics.render, accept)
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    def _authorized(self, authorization: bytes) -> bool:
        if self._key is None:
            return True
        if authorization[: len(_BEARER)].lower() != _BEARER:
            return False
        return hmac.compare_digest(authorization[len(_BEARER) :].strip(), self._key)
