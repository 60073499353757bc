# SPDX-License-Identifier: Apache-2.0
"""The breaker's state machine in process memory (``lua/breaker.lua`` is the same one on
Redis). Per process: with several workers each keeps its own state. Clock injected.
"""

from __future__ import annotations

import math

from genkit_endpoints.policies.breaker.base import (
    WINDOW_BUCKETS,
    BreakerConfig,
    BreakerState,
    Clock,
    Step,
)

__all__ = ["LocalBreakerState", "MemoryBreakerStore"]


class LocalBreakerState:
    """The state machine in process memory; ``lua/breaker.lua`` is the same one on Redis."""

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self.state = BreakerState.CLOSED
        self.opened_at = 0.0
        self._fails = 0
        self._probes: dict[str, float] = {}  # token -> lease expiry
        self._window: dict[int, list[int]] = {}  # bucket -> [calls, failures]

    def view(self, now: float) -> BreakerState:
        """The state as a reader sees it: OPEN past its recovery time reads HALF_OPEN."""
        if self.state is BreakerState.OPEN and now >= self.opened_at + self.config.recovery_timeout:
            return BreakerState.HALF_OPEN
        return self.state

    def acquire(self, now: float, token: str) -> Step:
        cfg = self.config
        transition = None
        if self.state is BreakerState.OPEN:
            reopen = self.opened_at + cfg.recovery_timeout
            if now < reopen:
                return Step(False, reopen - now)
            transition = self._move(BreakerState.HALF_OPEN, "recovery_timeout")
            self._probes.clear()
        if self.state is BreakerState.HALF_OPEN:
            self._probes = {t: exp for t, exp in self._probes.items() if exp > now}
            if len(self._probes) >= cfg.half_open_max_calls:
                return Step(False, 1.0, transition)
            self._probes[token] = now + cfg.probe_lease
        return Step(True, 0.0, transition)

    def release(self, token: str) -> None:
        self._probes.pop(token, None)

    def record(self, now: float, failed: bool, token: str) -> Step:
        if self.state is BreakerState.HALF_OPEN:
            if self._probes.pop(token, None) is None:
                return Step(True)  # not a probe of this half-open period: no say in it
            if failed:
                return Step(True, 0.0, self._trip(now, "probe_failed"))
            self._reset()
            return Step(True, 0.0, self._move(BreakerState.CLOSED, "probe_succeeded"))
        if self.state is not BreakerState.CLOSED:
            return Step(True)  # admitted before it opened: already decided
        reason = self._count(now, failed)
        if reason is None:
            return Step(True)
        return Step(True, 0.0, self._trip(now, reason))

    def _count(self, now: float, failed: bool) -> str | None:
        """Count one CLOSED outcome; the reason to trip, if it is time to."""
        cfg = self.config
        if cfg.mode == "consecutive":
            self._fails = self._fails + 1 if failed else 0
            return "failure_threshold" if self._fails >= cfg.failure_threshold else None
        width = cfg.window / WINDOW_BUCKETS
        current = math.floor(now / width)
        oldest = current - WINDOW_BUCKETS + 1
        counts = self._window.setdefault(current, [0, 0])
        counts[0] += 1
        counts[1] += int(failed)
        for bucket in [b for b in self._window if b < oldest]:
            del self._window[bucket]
        total = sum(c[0] for c in self._window.values())
        fails = sum(c[1] for c in self._window.values())
        if total >= cfg.min_calls and fails >= cfg.failure_rate * total:
            return "failure_rate"
        return None

    def _trip(self, now: float, reason: str) -> tuple[BreakerState, BreakerState, str]:
        self.opened_at = now
        self._reset()
        return self._move(BreakerState.OPEN, reason)

    def _reset(self) -> None:
        self._fails = 0
        self._probes.clear()
        self._window.clear()

    def _move(self, to: BreakerState, reason: str) -> tuple[BreakerState, BreakerState, str]:
        old, self.state = self.state, to
        return (old, to, reason)


class MemoryBreakerStore:
    """A ``BreakerStore`` over ``LocalBreakerState`` with a clock (monotonic by default)."""

    def __init__(self, config: BreakerConfig, clock: Clock) -> None:
        self.local = LocalBreakerState(config)
        self._clock = clock

    def view(self) -> BreakerState:
        return self.local.view(self._clock())

    async def acquire(self, token: str) -> Step:
        return self.local.acquire(self._clock(), token)

    async def record(self, failed: bool, token: str) -> Step:
        return self.local.record(self._clock(), failed, token)

    async def release(self, token: str) -> None:
        self.local.release(token)

    async def aclose(self) -> None:
        return None
