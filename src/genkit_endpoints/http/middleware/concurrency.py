# SPDX-License-Identifier: Apache-2.0
"""Concurrency limit: above ``MAX_CONCURRENT_REQUESTS`` in flight, answer 503 at once.

Queueing more work than a process can finish only grows latency and memory until
everything times out; an immediate 503 with ``Retry-After`` lets a load balancer or
client go elsewhere. The count is per process and includes open SSE streams. Health and
readiness probes are exempt: an overloaded process is still alive, and a probe that fails
under load would get it killed.
"""

from __future__ import annotations

from collections.abc import Iterable

from genkit_endpoints.core.errors import ServiceUnavailable
from genkit_endpoints.http.middleware.errors import request_path, send_problem
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send


class Overloaded(ServiceUnavailable):
    default_detail = "The server is handling too many requests; retry shortly."


class ConcurrencyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int, *, exempt_paths: Iterable[str] = ()) -> None:
        if limit < 1:
            raise ValueError("the concurrency limit must be at least 1")
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt_paths)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await send_problem(send, Overloaded(headers={"retry-after": "1"}), request_path(scope))
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
