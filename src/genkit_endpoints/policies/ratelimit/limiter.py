# SPDX-License-Identifier: Apache-2.0
"""Request rate limits per caller, over the ``limits`` library's async strategies.

``RateLimiter.hit(key)`` spends one request from every configured rate for ``key`` and
answers a ``Decision``: admitted or not, and the window numbers for the most restrictive
rate (what the ``RateLimit-*`` and ``Retry-After`` headers carry). It knows no ASGI or
gRPC types; the transports choose the key (principal, else client IP) and render it.

Backends (``LimitStore``): ``memory://`` counts in the process (``ratelimit.memory``); a
Redis URL counts cluster-wide on the process's shared Redis connection, with a bounded
fallback while Redis cannot answer (``ratelimit.redis``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from limits import RateLimitItem

from genkit_endpoints.compat.limits import require_limits
from genkit_endpoints.core.context import record_var
from genkit_endpoints.core.errors import EndpointError
from genkit_endpoints.policies.ratelimit.base import Decision, LimitStore, RateLimitConfig
from genkit_endpoints.policies.ratelimit.memory import MemoryLimits
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from genkit_endpoints.policies.ratelimit.redis import RedisLimits
    from genkit_endpoints.policies.redis import OutageGate, RedisConnections

__all__ = ["RateLimiter"]


class RateLimiter:
    """Counts requests per key against the configured rates; owned by the app's lifespan."""

    def __init__(
        self,
        cfg: RateLimitConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        connections: RedisConnections | None = None,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        """``clock`` paces the outage log; ``connections`` is where a Redis store takes
        its connection; pass the service's registry to share it (default: its own).
        ``observer`` counts the decisions."""
        require_limits()  # a limits release the kit was not checked against: one line
        self.cfg = cfg
        self.observer = observer
        self.items: tuple[RateLimitItem, ...] = cfg.items
        self.store: LimitStore
        # Shared store only: decides when Redis is down (shared with the other features).
        self.gate: OutageGate | None = None
        self._shared: RedisLimits | None = None
        if cfg.backend.is_memory:
            self.store = MemoryLimits(cfg)
        else:
            # The Redis extra is optional: imported only for a Redis URL.
            from genkit_endpoints.policies.ratelimit.redis import RedisLimits  # noqa: PLC0415
            from genkit_endpoints.policies.redis import RedisConnections  # noqa: PLC0415

            registry = connections if connections is not None else RedisConnections()
            connection = registry.acquire(
                cfg.backend, cfg.redis, user="rate_limit", critical=not cfg.fail_open
            )
            self.store = self._shared = RedisLimits(cfg, connection, clock)
            self.gate = self._shared.gate

    @property
    def outages(self) -> int:
        """Requests decided without the shared store (0 on memory)."""
        return self._shared.outages if self._shared is not None else 0

    async def hit(self, key: str, *, transport: str = "http") -> Decision:
        """Spend one request for ``key``. Raises ``RateLimitUnavailable`` only when the
        shared store cannot answer and the limiter fails closed. ``transport`` labels the
        decision in the metrics."""
        try:
            decision = await self.store.hit(key)
        except EndpointError:
            self._decided(transport, "unavailable")
            raise
        self._decided(transport, "allowed" if decision.allowed else "limited")
        return decision

    def _decided(self, transport: str, decision: str) -> None:
        self.observer.rate_limit(transport, decision)
        record = record_var.get()
        if record is not None:
            record.rate_limit = decision

    async def aclose(self) -> None:
        """Give the Redis connection back (no-op for memory)."""
        await self.store.aclose()
