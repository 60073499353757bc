# SPDX-License-Identifier: Apache-2.0
"""Breaker state shared on Redis, so every replica opens, half-opens and closes together.

Each transition is one atomic step of ``breaker.lua`` (the state machine of
``LocalBreakerState``), under ``<namespace>:cb:<name>:{state,probes,window}``. Reads are
cached for ``cache_ttl`` seconds: in CLOSED and OPEN the admission decision is taken from
that view, so a model call costs no Redis round trip before it starts — only HALF_OPEN
asks Redis (to take a probe slot atomically), and every outcome is recorded with one
script call whose answer refreshes the view. Limits, stated plainly:

* Replicas see another replica's trip up to ``cache_ttl`` late (a few more upstream
  calls may start in that time; their results are ignored once the breaker is open).
* Times are wall-clock seconds compared across replicas: their clocks must agree to
  well under ``recovery_timeout`` (NTP).
* "Consecutive" counts failures of the whole cluster in the order Redis sees them.
* Half-open probes are bounded cluster-wide; a probe whose process dies gives its slot
  back after ``probe_lease`` seconds.
* A failed Redis call (any failure: error, reset, timeout — 250 ms by default) is decided
  by this process's own ``LocalBreakerState`` — per process, exact — and logged as
  ``breaker_backend_unavailable`` at most once per ``outage_log_interval``. One failure
  is only that call's fallback; when the ``OutageGate``'s health probe confirms Redis is
  down, every call stays local (never waiting on a dead Redis) until the probe, repeated
  every ``outage_retry`` seconds at most, succeeds. The local state gathered meanwhile
  is not merged back when Redis answers again. The gate and the pool are the process's
  shared ``RedisConnection``: an outage the rate limiter or the cache confirmed keeps
  the breaker local too.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

import structlog

from genkit_endpoints.policies.backends import Throttle
from genkit_endpoints.policies.breaker.base import (
    WINDOW_BUCKETS,
    BreakerConfig,
    BreakerState,
    Clock,
    Step,
)
from genkit_endpoints.policies.breaker.memory import LocalBreakerState
from genkit_endpoints.policies.redis import OutageGate, RedisConnection

__all__ = ["RedisBreakerState"]

_log = structlog.get_logger(__name__)
_SCRIPT = (
    importlib.resources.files("genkit_endpoints.policies")
    .joinpath("lua", "breaker.lua")
    .read_text("utf-8")
)
_KEY_TTL_S = 86_400  # idle breakers' keys disappear after a day


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBreakerState:
    """A ``BreakerStore`` on Redis, with a short-lived local view and a local fallback."""

    def __init__(self, config: BreakerConfig, clock: Clock, connection: RedisConnection) -> None:
        if config.backend is None or config.backend.is_memory:
            raise ValueError("RedisBreakerState needs a Redis backend")
        self.config = config
        self._clock = clock
        self._local = LocalBreakerState(config)
        self.connection = connection
        self._released = False
        self._client = connection.client
        self._script = self._client.register_script(_SCRIPT)
        prefix = f"{config.namespace}:cb:{config.name}"
        self._keys = [f"{prefix}:state", f"{prefix}:probes", f"{prefix}:window"]
        self._view: tuple[BreakerState, float] = (BreakerState.CLOSED, 0.0)
        self._fetched_at = float("-inf")
        self.gate: OutageGate = connection.gate
        connection.probe_every(config.outage_retry)
        self._outage_log = Throttle(config.outage_log_interval)
        self._down = False

    def view(self) -> BreakerState:
        now = self._clock()
        if self._down or not self.gate.up:  # calls are decided locally: so is the view
            return self._local.view(now)
        state, opened_at = self._view
        if state is BreakerState.OPEN and now >= opened_at + self.config.recovery_timeout:
            return BreakerState.HALF_OPEN
        return state

    async def acquire(self, token: str) -> Step:
        now = self._clock()
        if not self.gate.up:
            return self._local.acquire(now, token)
        try:
            if now - self._fetched_at > self.config.cache_ttl:
                await self._run("read", now)
            state, opened_at = self._view
            if state is BreakerState.CLOSED:
                return Step(True)
            reopen = opened_at + self.config.recovery_timeout
            if state is BreakerState.OPEN and now < reopen:
                return Step(False, reopen - now)
            return await self._run("acquire", now, token)
        except Exception as exc:  # any failure of the store is its outage
            self._outage(now, exc)
            return self._local.acquire(now, token)

    async def record(self, failed: bool, token: str) -> Step:
        now = self._clock()
        if not self.gate.up:
            return self._local.record(now, failed, token)
        try:
            return await self._run("record", now, token, failed)
        except Exception as exc:  # any failure of the store is its outage
            self._outage(now, exc)
            return self._local.record(now, failed, token)

    async def release(self, token: str) -> None:
        now = self._clock()
        self._local.release(token)
        if not self.gate.up:
            return
        try:
            await self._run("release", now, token)
        except Exception as exc:  # any failure of the store is its outage
            # The probe's lease frees the slot on Redis later; nothing else to do.
            self._outage(now, exc)

    async def aclose(self) -> None:
        """Give the shared connection back (the last feature to do so closes it)."""
        if not self._released:  # closing twice must not release another holder's share
            self._released = True
            await self.connection.release("breaker")

    async def _run(self, op: str, now: float, token: str = "", failed: bool = False) -> Step:
        cfg = self.config
        args: list[str | int | float] = [
            op, repr(now), cfg.mode, cfg.failure_threshold, repr(cfg.failure_rate),
            repr(cfg.window), cfg.min_calls, repr(cfg.recovery_timeout),
            cfg.half_open_max_calls, repr(cfg.probe_lease), WINDOW_BUCKETS, token,
            "1" if failed else "0", _KEY_TTL_S,
        ]  # fmt: skip
        state, opened_at, admitted, retry_after, old, reason = await self._script(
            keys=self._keys, args=args
        )
        self._view = (BreakerState(_text(state)), float(_text(opened_at)))
        self._fetched_at = now
        if self._down:
            self._down = False
            _log.info("breaker_backend_recovered", backend=cfg.backend and cfg.backend.redacted)
        transition = None
        if _text(old):
            transition = (BreakerState(_text(old)), self._view[0], _text(reason))
        return Step(bool(int(admitted)), float(_text(retry_after)), transition)

    def _outage(self, now: float, exc: BaseException) -> None:
        self._down = True
        self.gate.failed()
        if self._outage_log.due(now):
            _log.warning(
                "breaker_backend_unavailable",
                backend=self.config.backend and self.config.backend.redacted,
                error=type(exc).__name__,
                fallback="local",
            )
