# SPDX-License-Identifier: Apache-2.0
"""gRPC rate limiting: the REST limiter's rules for every RPC.

The key is the authenticated principal, else the peer's IP address from
``context.peer()`` — never metadata, which the client writes (keying on a metadata
value, as the reference sample did, lets a client pick a fresh quota per call). A
refusal ends the call with RESOURCE_EXHAUSTED and a ``retry-after`` trailer; a
fail-closed storage outage with UNAVAILABLE and ``retry-after`` (``abort_with_error``
maps both). Standard health, reflection and the service's own health RPC are exempt.

The principal is set inside the auth interceptor's wrapped behaviour, so this one must
be listed after it (``create_grpc_server`` does): its check then runs inside auth's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from genkit_endpoints.core.context import current_principal
from genkit_endpoints.core.errors import EndpointError, RateLimited
from genkit_endpoints.grpc.interceptors import (
    Around,
    Behaviour,
    GuardInterceptor,
    run_behaviour,
)
from genkit_endpoints.grpc.servicer import abort_with_error
from genkit_endpoints.policies.ratelimit import RateLimiter

__all__ = ["RateLimitInterceptor", "admit", "peer_ip"]


def peer_ip(peer: str | None) -> str:
    """The address part of a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``, ``unix:…``)."""
    if not peer:
        return "unknown"
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0] if rest.startswith("[") else rest
        return host.strip("[]") or "unknown"
    return peer  # unix sockets and the like: every caller on it shares one key


def call_key(context: grpc.aio.ServicerContext) -> str:
    principal = current_principal()
    if principal is not None:
        return f"principal:{principal.name}"
    return f"ip:{peer_ip(context.peer())}"


class RateLimitInterceptor(GuardInterceptor):
    """Spend one request per RPC from ``limiter``; refuse with RESOURCE_EXHAUSTED."""

    def __init__(self, limiter: RateLimiter, *, exempt_methods: Iterable[str] = ()) -> None:
        super().__init__(exempt_methods=exempt_methods)
        self._limiter = limiter

    def around_for(self, details: grpc.HandlerCallDetails) -> Around:
        limiter = self._limiter

        async def around(behaviour: Behaviour, request: Any, ctx: grpc.aio.ServicerContext) -> Any:
            await admit(limiter, ctx)
            return await run_behaviour(behaviour, request, ctx)

        return around

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter


async def admit(limiter: RateLimiter, ctx: grpc.aio.ServicerContext) -> None:
    """Spend one request for the call, or end it (RESOURCE_EXHAUSTED, or UNAVAILABLE)."""
    try:
        decision = await limiter.hit(call_key(ctx), transport="grpc")
    except EndpointError as err:  # the store is down and the limiter fails closed
        await abort_with_error(ctx, err)
        return  # pragma: no cover - abort always raises
    if not decision.allowed:
        refusal = RateLimited(headers={"retry-after": str(decision.retry_after)})
        await abort_with_error(ctx, refusal)
