# SPDX-License-Identifier: Apache-2.0
"""Rate limiting for REST: the limiter's decision as 429 or ``RateLimit-*`` headers.

The key is the authenticated principal when there is one, else the client IP. So this
layer sits inside the API-key middleware (which sets the principal) and outside the
proxy-headers one (which settles the real client address); a client cannot choose its
own key by sending a header. Admitted responses carry ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds) for the most restrictive
rate; a refusal is a 429 problem+json that also carries ``Retry-After``. When the limit
store is down and the limiter fails open, the request passes without headers; failing
closed it is a 503 with ``Retry-After`` (``genkit_endpoints.policies.ratelimit``).

Health and readiness are exempt: a probe must never be refused because a client on the
same address is busy.
"""

from __future__ import annotations

from collections.abc import Iterable

from genkit_endpoints.core.context import current_principal
from genkit_endpoints.core.errors import EndpointError, RateLimited
from genkit_endpoints.http.middleware.errors import request_path, send_problem
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send
from genkit_endpoints.policies.ratelimit import Decision, RateLimiter

__all__ = ["RateLimitMiddleware", "rate_limit_headers", "request_key"]


def request_key(scope: Scope) -> str:
    """``principal:<name>`` when authenticated, else ``ip:<client address>``."""
    principal = current_principal()
    if principal is not None:
        return f"principal:{principal.name}"
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """The ``RateLimit-*`` (and, when refused, ``Retry-After``) headers; none without numbers."""
    if decision.limit is None:
        return {}
    headers = {
        "ratelimit-limit": str(decision.limit),
        "ratelimit-remaining": str(decision.remaining),
        "ratelimit-reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        headers["retry-after"] = str(decision.retry_after)
    return headers


class RateLimitMiddleware:
    def __init__(
        self, app: ASGIApp, limiter: RateLimiter, *, exempt_paths: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.exempt = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        try:
            decision = await self.limiter.hit(request_key(scope))
        except EndpointError as err:  # the store is down and the limiter fails closed
            await send_problem(send, err, request_path(scope))
            return
        headers = rate_limit_headers(decision)
        if not decision.allowed:
            await send_problem(send, RateLimited(headers=headers), request_path(scope))
            return
        if not headers:
            await self.app(scope, receive, send)
            return
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)
