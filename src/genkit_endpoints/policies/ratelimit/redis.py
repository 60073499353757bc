# SPDX-License-Identifier: Apache-2.0
"""Rate limits counted on Redis: every replica shares one window per key.

The counting is ``limits``' (its Lua scripts make each hit atomic), over the process's
shared ``RedisConnection``: ``limits`` gets the shared pool (``compat.limits``), and the
store consults the shared ``OutageGate``. ``limits`` reads the wall clock itself
(``time.time``), so windows cannot take an injected clock; the outage-log throttle, our
own logic, can.

When Redis cannot answer (any failure of a call: refused, reset, timed out), the request
is decided without it: by default it fails open, but bounded — a ``MemoryLimits`` in
this process counts it at the configured rates, so while Redis is unreachable every
instance admits at most the configured rate per key, never everything; with
``fail_open=False`` it is refused with 503 and ``Retry-After``. One failed call is only
that request's fallback; the gate decides from a health probe whether Redis is down, and
only then do requests skip it (at no cost) until it answers again — so a slow answer in
a burst never switches shared limiting off for the whole process. Fallbacks are counted
(``outages``) and logged at most once per ``outage_log_interval`` with the redacted URL.
After an outage redis-py reconnects the pool and ``limits`` reloads its scripts by itself.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from genkit_endpoints.compat.limits import redis_storage
from genkit_endpoints.policies.backends import Throttle
from genkit_endpoints.policies.ratelimit.base import (
    Decision,
    RateLimitConfig,
    RateLimitUnavailable,
    decide,
    strategy,
)
from genkit_endpoints.policies.ratelimit.memory import MemoryLimits
from genkit_endpoints.policies.redis import OutageGate, RedisConnection

__all__ = ["RedisLimits"]

_log = structlog.get_logger(__name__)
_OUTAGE_RETRY_AFTER = 1  # seconds: a storage outage says nothing about when it ends
_REDIS_SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}


class RedisLimits:
    """A ``LimitStore`` on Redis with a bounded local fallback (see the module docstring)."""

    def __init__(
        self, cfg: RateLimitConfig, connection: RedisConnection, clock: Callable[[], float]
    ) -> None:
        self.cfg = cfg
        self.items = cfg.items
        self.connection = connection
        self._released = False
        self.gate: OutageGate = connection.gate
        scheme, _, rest = cfg.backend.url.partition("://")
        storage = redis_storage(
            f"{_REDIS_SCHEMES[scheme]}://{rest}",
            connection.pool,
            key_prefix=f"{cfg.namespace}:rl",
        )
        self._strategy = strategy(cfg.strategy, storage)
        self._clock = clock
        self._outage_log = Throttle(cfg.outage_log_interval)
        self.outages = 0  # requests decided without Redis (a metric later)
        # Counts while Redis cannot answer; built at the first fallback.
        self._local: MemoryLimits | None = None

    async def hit(self, key: str) -> Decision:
        if self.gate.up:
            try:
                return await decide(self._strategy, self.items, key)
            except Exception as exc:  # any failure of the store is its outage
                self.gate.failed()
                return await self._fallback(key, exc)
        return await self._fallback(key, None)

    async def _fallback(self, key: str, exc: BaseException | None) -> Decision:
        """Decide without Redis: count in this process, or refuse (fail closed)."""
        self.outages += 1
        if self._outage_log.due(self._clock()):
            _log.warning(
                "rate_limit_storage_unavailable",
                backend=self.cfg.backend.redacted,
                error=type(exc.__cause__ or exc).__name__ if exc is not None else "down",
                fail_open=self.cfg.fail_open,
                outages=self.outages,
            )
        if not self.cfg.fail_open:
            raise RateLimitUnavailable(headers={"retry-after": str(_OUTAGE_RETRY_AFTER)})
        if self._local is None:
            self._local = MemoryLimits(self.cfg)
        return await self._local.hit(key)

    async def aclose(self) -> None:
        """Give the shared connection back (the last feature to do so closes it)."""
        if not self._released:  # closing twice must not release another holder's share
            self._released = True
            await self.connection.release("rate_limit")
