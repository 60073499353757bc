"""The circuit breaker around model calls: an async state machine, clock injected.

CLOSED → OPEN when upstream failures reach ``failure_threshold`` in a row (``consecutive``)
or, in ``adaptive`` mode, when at least ``min_calls`` calls in the sliding ``window`` failed
at ``failure_rate`` or more. OPEN refuses every call with ``BreakerOpen`` (503, Retry-After)
before any upstream work; after ``recovery_timeout`` it is HALF_OPEN and admits at most
``half_open_max_calls`` concurrent probes: a probe's success closes it, a failure re-opens
it. Only the provider's failures count — ``UpstreamError`` (invalid model output
included) and ``UpstreamTimeout``, but not ``UpstreamRejected`` — the types
``ModelClient`` gives them once it has told them apart from bugs. Everything else leaves
the counts alone: client errors, a 500 from a programming error in a flow, tool or model
plugin (one broken flow must not take every flow down and blame the provider), and any
raw exception, a ``TimeoutError`` or ``ConnectionError`` included — a provider's never
leaves ``ModelClient`` raw, so a raw one came from elsewhere (a stream consumer whose
client hung up, a bug). A cancelled call records nothing and frees its probe slot, so a
client hanging up mid-probe never wedges the breaker.

The adaptive window is ``WINDOW_BUCKETS`` buckets wide: it slides in steps of
``window / WINDOW_BUCKETS`` and memory stays bounded whatever the call rate.
``pybreaker`` is not used: its decorator never trips on ``async def`` functions.

Backends: local (default) is per process — with several workers each keeps its own
state. With ``backend`` set to Redis the state lives there (``policies.breaker_redis``)
and every replica opens and closes together; see that module for its limits and for the
fallback to this local state machine during a Redis outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, NamedTuple

import structlog

from genkit_endpoints.core.errors import (
    ServiceUnavailable,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from genkit_endpoints.policies.backends import BackendSpec, RedisOptions

if TYPE_CHECKING:
    from genkit_endpoints.policies.breaker_redis import RedisBreakerState

__all__ = [
    "Breaker",
    "BreakerConfig",
    "BreakerOpen",
    "BreakerState",
    "LocalBreakerState",
    "counts_as_failure",
]

_log = structlog.get_logger(__name__)
Clock = Callable[[], float]
WINDOW_BUCKETS = 20


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(ServiceUnavailable):
    """Refused by the breaker: 503 / UNAVAILABLE, ``Retry-After`` = seconds until half-open."""

    slug = "breaker-open"
    default_detail = "The model provider is failing; retry later."

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(headers={"retry-after": str(self.retry_after)})


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds in calls, times in seconds. ``backend`` None or memory: local state."""

    mode: Literal["consecutive", "adaptive"] = "consecutive"
    failure_threshold: int = 5
    failure_rate: float = 0.5
    window: float = 60.0
    min_calls: int = 10
    recovery_timeout: float = 30.0
    half_open_max_calls: int = 1
    backend: BackendSpec | None = None
    redis: RedisOptions = field(default_factory=RedisOptions)
    namespace: str = "genkit-endpoints"
    name: str = "model"
    # A probe that never reports (its process died) gives its slot back after this.
    probe_lease: float = 120.0
    # Shared state only: how stale the local view may be (admission in CLOSED/OPEN is
    # decided from it, so most calls cost no Redis round trip before the model call).
    cache_ttl: float = 0.5
    # Shared state only: after a Redis error, stay local this long before trying again.
    outage_retry: float = 2.0
    outage_log_interval: float = 30.0

    def __post_init__(self) -> None:
        if self.mode not in ("consecutive", "adaptive"):
            raise ValueError(f"breaker mode must be consecutive or adaptive, got {self.mode!r}")
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if not 0 < self.failure_rate <= 1:  # also rejects NaN
            raise ValueError("failure_rate must be in (0, 1]")
        if self.min_calls < 1 or self.half_open_max_calls < 1:
            raise ValueError("min_calls and half_open_max_calls must be >= 1")
        for name in ("window", "recovery_timeout", "probe_lease", "outage_log_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.cache_ttl <= 5 or not self.outage_retry >= 0:
            raise ValueError("cache_ttl must be in [0, 5] s and outage_retry >= 0")
        if not self.namespace or not self.name or any(c.isspace() for c in self.namespace):
            raise ValueError("the breaker needs a non-empty namespace without spaces, and a name")
        if self.backend is not None:
            self.backend.require_client()

    @property
    def shared(self) -> bool:
        return self.backend is not None and not self.backend.is_memory


class Step(NamedTuple):
    """One state-machine step: admitted?, retry-after, and a transition if it caused one."""

    admitted: bool
    retry_after: float = 0.0
    transition: tuple[BreakerState, BreakerState, str] | None = None


def counts_as_failure(exc: BaseException) -> bool:
    """The provider failing only: never client errors, bugs, raw exceptions or
    cancellation, never the provider refusing one request (``UpstreamRejected``: a 4xx
    other than 429)."""
    if isinstance(exc, UpstreamRejected):
        return False
    return isinstance(exc, UpstreamError | UpstreamTimeout)


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


class Breaker:
    """One breaker for one upstream; ``async with breaker.call(): <model call>``."""

    def __init__(self, config: BreakerConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.transitions = 0
        self._local = LocalBreakerState(config)
        self._shared: RedisBreakerState | None = None
        if config.shared:
            from genkit_endpoints.policies.breaker_redis import RedisBreakerState  # noqa: PLC0415

            # Wall-clock time: replicas compare each other's opened_at.
            self._clock = clock or time.time
            self._shared = RedisBreakerState(config, self._clock, self._local)
        else:
            self._clock = clock or time.monotonic

    @property
    def state(self) -> BreakerState:
        """The current state (shared: as last seen, at most ``cache_ttl`` old)."""
        if self._shared is not None:
            return self._shared.view()
        return self._local.view(self._clock())

    @contextlib.asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Admit one upstream call or raise ``BreakerOpen``; record how it ended."""
        token = uuid.uuid4().hex
        if self._shared is not None:
            step = await self._shared.acquire(token)
        else:
            step = self._local.acquire(self._clock(), token)
        self._note(step)
        if not step.admitted:
            raise BreakerOpen(step.retry_after)
        try:
            yield
        except asyncio.CancelledError:
            # Shielded: a second cancellation must not skip giving the probe slot back.
            await asyncio.shield(self._release(token))
            raise
        except BaseException as exc:
            if counts_as_failure(exc):
                await self._record(True, token)
            else:
                await self._release(token)
            raise
        else:
            await self._record(False, token)

    async def aclose(self) -> None:
        """Close the Redis client, if any (the app's lifespan calls this at shutdown)."""
        if self._shared is not None:
            await self._shared.aclose()

    async def _record(self, failed: bool, token: str) -> None:
        if self._shared is not None:
            step = await self._shared.record(failed, token)
        else:
            step = self._local.record(self._clock(), failed, token)
        self._note(step)

    async def _release(self, token: str) -> None:
        if self._shared is not None:
            await self._shared.release(token)
        else:
            self._local.release(token)

    def _note(self, step: Step) -> None:
        if step.transition is None:
            return
        old, new, reason = step.transition
        self.transitions += 1
        _log.warning(
            "breaker_state_changed",
            breaker=self.config.name,
            to=str(new),
            reason=reason,
            **{"from": str(old)},
        )
