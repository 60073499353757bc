"""Request rate limits per caller, over the ``limits`` library's async strategies.

``RateLimiter.hit(key)`` spends one request from every configured rate for ``key`` and
answers a ``Decision``: admitted or not, and the window numbers for the most restrictive
rate (what the ``RateLimit-*`` and ``Retry-After`` headers carry). It knows no ASGI or
gRPC types; the transports choose the key (principal, else client IP) and render it.

Backends (``BackendSpec``): ``memory://`` counts in the process — exact for one process,
per process with several workers (N workers admit up to N times the rate). A Redis URL
counts cluster-wide: every replica shares one window per key, made atomic by the Lua
scripts ``limits`` ships. ``limits`` reads the wall clock itself (``time.time``), so
windows cannot take an injected clock; the outage-log throttle, our own logic, can.

Several rates (``10/second;100/minute``): a request any rate refuses is refused. With
more than one rate the limiter first *tests* every rate (reads only) and refuses
without spending anything when one is exhausted, then *hits* them in order. Each
``hit`` is atomic on its own, so no rate ever admits more than its amount — exact under
any concurrency. The test-then-hit pair is not one atomic step across rates: two
requests racing for the last slot of one rate may both pass the test, and the loser has
then spent one unit of the rates hit before the one that refused it. That costs the
caller a unit at the boundary under contention, never an extra admission. (Fixed window
counts refused hits too — ``limits`` increments before comparing — which only matters
for its ``remaining``, already 0.)

When the shared store cannot answer (any failure of a call: refused, reset, timed out),
the request is decided without it: by default it fails open, but bounded — a limiter in
this process counts it at the configured rates, so while Redis is unreachable every
instance admits at most the configured rate per key, never everything; with
``fail_open=False`` it is refused with 503 and ``Retry-After``. One failed call is only
that request's fallback; the ``OutageGate`` decides from a health probe whether Redis is
down, and only then do requests skip it (at no cost) until it answers again — so a slow
answer in a burst never switches shared limiting off for the whole process. Fallbacks are
counted (``outages``) and logged at most once per ``outage_log_interval`` with the
redacted URL. After an outage redis-py reconnects its pool and ``limits`` reloads its
scripts by itself.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import RateLimiter as Strategy

from genkit_endpoints.core.errors import ServiceUnavailable
from genkit_endpoints.policies.backends import (
    BackendSpec,
    OutageGate,
    RedisOptions,
    Throttle,
    parse_backend,
)

__all__ = [
    "Decision",
    "RateLimitConfig",
    "RateLimitUnavailable",
    "RateLimiter",
    "StrategyName",
    "parse_rates",
]

_log = structlog.get_logger(__name__)

StrategyName = Literal["moving-window", "sliding-window-counter", "fixed-window"]
_STRATEGY_NAMES: tuple[str, ...] = get_args(StrategyName)
_SEPARATORS = re.compile(r"[;,]")
_STRATEGIES: dict[str, Callable[[Storage], Strategy]] = {
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}
_OUTAGE_RETRY_AFTER = 1  # seconds: a storage outage says nothing about when it ends
_REDIS_SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}


def parse_rates(text: str) -> tuple[RateLimitItem, ...]:
    """``"10/second;100/minute"`` as ``limits`` items. Raises ``ValueError`` naming the bad part."""
    parts = [part.strip() for part in _SEPARATORS.split(text)]
    if not any(parts):
        raise ValueError("the rate limit is empty: give one like '60/minute'")
    items: list[RateLimitItem] = []
    for part in parts:
        if not part:
            raise ValueError(f"empty rate in {text!r}: separate rates with one ';'")
        try:
            item = parse(part)
        except ValueError:
            raise ValueError(
                f"malformed rate {part!r}: use '<count>/<second|minute|hour|day>', "
                "e.g. '60/minute' or '10 per 2 seconds'"
            ) from None
        if item.amount <= 0:
            raise ValueError(f"rate {part!r} admits nothing: the count must be at least 1")
        items.append(item)
    return tuple(items)


@dataclass(frozen=True)
class RateLimitConfig:
    """What to limit and where to count. Validated here, so a bad value fails at start-up.

    ``namespace`` prefixes every Redis key (``<namespace>:rl:…``), so several services or
    test runs can share one Redis without seeing each other's counts.
    """

    rates: str = "60/minute"
    strategy: StrategyName = "moving-window"
    backend: BackendSpec = field(default_factory=lambda: parse_backend(None))
    redis: RedisOptions = field(default_factory=RedisOptions)
    fail_open: bool = True
    outage_log_interval: float = 60.0
    namespace: str = "genkit-endpoints"

    def __post_init__(self) -> None:
        parse_rates(self.rates)
        if self.strategy not in _STRATEGY_NAMES:
            raise ValueError(
                f"unknown rate-limit strategy {self.strategy!r}: use one of "
                + ", ".join(_STRATEGY_NAMES)
            )
        if not self.outage_log_interval > 0:
            raise ValueError("outage_log_interval must be a positive number of seconds")
        if not self.namespace or any(c.isspace() for c in self.namespace):
            raise ValueError("the rate-limit namespace must be a non-empty word")
        self.backend.require_client()

    @property
    def items(self) -> tuple[RateLimitItem, ...]:
        return parse_rates(self.rates)


@dataclass(frozen=True)
class Decision:
    """The answer for one request, about the most restrictive rate: admitted, the one
    with the fewest requests left; refused, the exhausted one that frees a slot last
    (retrying earlier cannot succeed).

    ``limit`` is None when no numbers are known (a storage outage, failing open): send
    no ``RateLimit-*`` headers then. ``reset_after`` is the seconds until that rate's
    window frees a slot; ``retry_after`` is its whole-second ceiling, at least 1 when
    refused (0 when admitted).
    """

    allowed: bool
    limit: int | None = None
    remaining: int = 0
    reset_after: float = 0.0
    retry_after: int = 0

    @property
    def reset_seconds(self) -> int:
        """``reset_after`` in whole seconds, rounded up (the ``RateLimit-Reset`` value)."""
        return math.ceil(self.reset_after)


class RateLimitUnavailable(ServiceUnavailable):
    """The limit store is down and the limiter fails closed."""

    default_detail = "Request limits cannot be checked right now; retry later."


def _storage(cfg: RateLimitConfig) -> Storage:
    prefix = f"{cfg.namespace}:rl"
    if cfg.backend.is_memory:
        return MemoryStorage()
    scheme, _, rest = cfg.backend.url.partition("://")
    uri = f"{_REDIS_SCHEMES[scheme]}://{rest}"
    # The kit's blocking pool: a burst waits for a connection instead of failing (which
    # would read as an outage and switch limiting off under load).
    options: dict[str, Any] = {"connection_pool": cfg.backend.redis_pool(cfg.redis)}
    from limits.aio.storage import RedisStorage  # noqa: PLC0415

    return RedisStorage(
        uri, wrap_exceptions=True, implementation="redispy", key_prefix=prefix, **options
    )


class RateLimiter:
    """Counts requests per key against the configured rates; owned by the app's lifespan."""

    def __init__(
        self, cfg: RateLimitConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg = cfg
        self.items: tuple[RateLimitItem, ...] = cfg.items
        self.storage = _storage(cfg)
        self._strategy: Strategy = _STRATEGIES[cfg.strategy](self.storage)
        self._clock = clock
        self._outage_log = Throttle(cfg.outage_log_interval)
        self.outages = 0  # requests decided without the shared store (a metric later)
        # Shared store only: decides when it is down, and the per-process limiter that
        # counts meanwhile (built at the first fallback, on the serving loop).
        self.gate: OutageGate | None = None
        self._local: Strategy | None = None
        if not cfg.backend.is_memory:
            self.gate = OutageGate.for_redis(cfg.backend, cfg.redis, name="rate_limit")

    async def hit(self, key: str) -> Decision:
        """Spend one request for ``key``. Raises ``RateLimitUnavailable`` only when the
        shared store cannot answer and the limiter fails closed."""
        gate = self.gate
        if gate is None:
            return await self._hit(self._strategy, key)
        if gate.up:
            try:
                return await self._hit(self._strategy, key)
            except Exception as exc:  # any failure of the store is its outage
                gate.failed()
                return await self._fallback(key, exc)
        return await self._fallback(key, None)

    async def _hit(self, strategy: Strategy, key: str) -> Decision:
        if len(self.items) > 1:
            # Reads only: an exhausted rate refuses before any rate is spent.
            tests = await asyncio.gather(*(strategy.test(item, key) for item in self.items))
            exhausted = [item for item, ok in zip(self.items, tests, strict=True) if not ok]
            if exhausted:
                return await self._refused(strategy, exhausted, key)
        for item in self.items:
            if not await strategy.hit(item, key):
                return await self._refused(strategy, [item], key)
        return await self._admitted(strategy, key)

    async def _admitted(self, strategy: Strategy, key: str) -> Decision:
        stats = await asyncio.gather(*(strategy.get_window_stats(item, key) for item in self.items))
        now = time.time()
        # The tightest rate: fewest left; on a tie, the one whose window frees last.
        item, (reset_time, remaining) = min(
            zip(self.items, stats, strict=True), key=lambda pair: (pair[1][1], -pair[1][0])
        )
        return Decision(
            allowed=True,
            limit=item.amount,
            remaining=max(0, remaining),
            reset_after=max(0.0, reset_time - now),
        )

    async def _refused(
        self, strategy: Strategy, exhausted: list[RateLimitItem], key: str
    ) -> Decision:
        stats = await asyncio.gather(*(strategy.get_window_stats(item, key) for item in exhausted))
        # Retrying helps only once every exhausted rate has a slot: report the last to free.
        item, (reset_time, _) = max(zip(exhausted, stats, strict=True), key=lambda pair: pair[1][0])
        reset_after = max(0.0, reset_time - time.time())
        return Decision(
            allowed=False,
            limit=item.amount,
            remaining=0,
            reset_after=reset_after,
            retry_after=max(1, math.ceil(reset_after)),
        )

    async def _fallback(self, key: str, exc: BaseException | None) -> Decision:
        """Decide without the shared store: count in this process, or refuse (fail closed)."""
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
            self._local = _STRATEGIES[self.cfg.strategy](MemoryStorage())
        return await self._hit(self._local, key)

    async def aclose(self) -> None:
        """Release the Redis connections (no-op for memory)."""
        if self.gate is not None:
            await self.gate.aclose()
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None:
            await client.aclose()
