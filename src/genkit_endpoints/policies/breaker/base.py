# SPDX-License-Identifier: Apache-2.0
"""The circuit breaker's shared parts: states, config, one step of the state machine,
which failures count, and the storage protocol its two backends implement.

``memory`` keeps the state machine in the process (per process: with several workers
each keeps its own state); ``redis`` keeps it on Redis, so every replica opens and closes
together. ``Breaker`` (``circuit``) drives either through ``BreakerStore``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, NamedTuple, Protocol

from genkit_endpoints.core.errors import (
    ServiceUnavailable,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from genkit_endpoints.policies.backends import (
    DEFAULT_NAMESPACE,
    BackendSpec,
    RedisOptions,
    check_namespace,
)

__all__ = [
    "WINDOW_BUCKETS",
    "BreakerConfig",
    "BreakerOpen",
    "BreakerState",
    "BreakerStore",
    "Clock",
    "Step",
    "counts_as_failure",
]

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
    namespace: str = DEFAULT_NAMESPACE
    name: str = "model"
    # A probe that never reports (its process died) gives its slot back after this.
    probe_lease: float = 120.0
    # Shared state only: how stale the local view may be (admission in CLOSED/OPEN is
    # decided from it, so most calls cost no Redis round trip before the model call).
    cache_ttl: float = 0.5
    # Shared state only: while Redis is down, how often to check it again (the shared
    # connection's probe runs as often as its most eager feature asks).
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
        check_namespace(self.namespace, "breaker")
        if not self.name:
            raise ValueError("the breaker needs a name")
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


class BreakerStore(Protocol):
    """Where the state machine runs. Never raises a storage error: a backend that cannot
    answer decides with a local state machine instead."""

    def view(self) -> BreakerState:
        """The state as a reader sees it now (OPEN past its recovery time: HALF_OPEN)."""
        ...

    async def acquire(self, token: str) -> Step:
        """Admit one call (a HALF_OPEN probe takes a slot under ``token``) or refuse it."""
        ...

    async def record(self, failed: bool, token: str) -> Step:
        """How the admitted call ``token`` ended."""
        ...

    async def release(self, token: str) -> None:
        """The call ``token`` ended without a verdict: give its probe slot back."""
        ...

    async def aclose(self) -> None: ...
