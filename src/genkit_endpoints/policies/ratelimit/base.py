# SPDX-License-Identifier: Apache-2.0
"""Rate limiting's shared parts: rates, config, the decision, and the storage protocol.

A ``LimitStore`` spends one request for a key from every configured rate and answers a
``Decision``: ``memory`` counts in the process, ``redis`` cluster-wide on the shared
connection. ``decide`` is the algorithm both run over a ``limits`` strategy.

Several rates (``10/second;100/minute``): a request any rate refuses is refused. With
more than one rate ``decide`` first *tests* every rate (reads only) and refuses without
spending anything when one is exhausted, then *hits* them in order. Each ``hit`` is
atomic on its own, so no rate ever admits more than its amount — exact under any
concurrency. The test-then-hit pair is not one atomic step across rates: two requests
racing for the last slot of one rate may both pass the test, and the loser has then
spent one unit of the rates hit before the one that refused it. That costs the caller a
unit at the boundary under contention, never an extra admission. (Fixed window counts
refused hits too — ``limits`` increments before comparing — which only matters for its
``remaining``, already 0.)
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from limits import RateLimitItem
from limits.aio.storage import Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import RateLimiter as Strategy

from genkit_endpoints.core.errors import ServiceUnavailable
from genkit_endpoints.policies.ratelimit.config import (
    RateLimitConfig,
    StrategyName,
    parse_rates,
)

__all__ = [
    "Decision",
    "LimitStore",
    "RateLimitConfig",
    "RateLimitUnavailable",
    "StrategyName",
    "decide",
    "parse_rates",
    "strategy",
]

_STRATEGIES: dict[str, Callable[[Storage], Strategy]] = {
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}


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


class LimitStore(Protocol):
    """Where requests are counted. ``hit`` raises only ``RateLimitUnavailable`` (a shared
    store that cannot answer, failing closed); other storage failures are its own to
    handle."""

    async def hit(self, key: str) -> Decision: ...

    async def aclose(self) -> None: ...


def strategy(name: StrategyName, storage: Storage) -> Strategy:
    """The ``limits`` strategy ``name`` over ``storage``."""
    return _STRATEGIES[name](storage)


async def decide(strategy: Strategy, items: tuple[RateLimitItem, ...], key: str) -> Decision:
    """Spend one request for ``key`` from every rate in ``items`` (see the module docstring)."""
    if len(items) > 1:
        # Reads only: an exhausted rate refuses before any rate is spent.
        tests = await asyncio.gather(*(strategy.test(item, key) for item in items))
        exhausted = [item for item, ok in zip(items, tests, strict=True) if not ok]
        if exhausted:
            return await _refused(strategy, exhausted, key)
    for item in items:
        if not await strategy.hit(item, key):
            return await _refused(strategy, [item], key)
    return await _admitted(strategy, items, key)


async def _window_stats(
    strategy: Strategy, items: Sequence[RateLimitItem], key: str
) -> list[tuple[float, int]]:
    # One rate (the usual case): awaited in place. gather would wrap it in a task of its
    # own, on every admitted request.
    if len(items) == 1:
        stats = await strategy.get_window_stats(items[0], key)
        return [(stats.reset_time, stats.remaining)]
    return [
        (stats.reset_time, stats.remaining)
        for stats in await asyncio.gather(*(strategy.get_window_stats(i, key) for i in items))
    ]


async def _admitted(strategy: Strategy, items: tuple[RateLimitItem, ...], key: str) -> Decision:
    stats = await _window_stats(strategy, items, key)
    now = time.time()
    # The tightest rate: fewest left; on a tie, the one whose window frees last.
    item, (reset_time, remaining) = min(
        zip(items, stats, strict=True), key=lambda pair: (pair[1][1], -pair[1][0])
    )
    return Decision(
        allowed=True,
        limit=item.amount,
        remaining=max(0, remaining),
        reset_after=max(0.0, reset_time - now),
    )


async def _refused(strategy: Strategy, exhausted: list[RateLimitItem], key: str) -> Decision:
    stats = await _window_stats(strategy, exhausted, key)
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
