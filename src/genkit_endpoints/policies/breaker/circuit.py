# SPDX-License-Identifier: Apache-2.0
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

Backends (``BreakerStore``): ``memory`` (default) is per process — with several workers
each keeps its own state. With ``backend`` set to Redis the state lives there
(``breaker.redis``) and every replica opens and closes together; see that module for its
limits and for the fallback to the local state machine during a Redis outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import structlog

from genkit_endpoints.policies.breaker.base import (
    BreakerConfig,
    BreakerOpen,
    BreakerState,
    BreakerStore,
    Clock,
    Step,
    counts_as_failure,
)
from genkit_endpoints.policies.breaker.memory import MemoryBreakerStore
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from genkit_endpoints.policies.redis import RedisConnections

__all__ = ["Breaker"]

_log = structlog.get_logger(__name__)


class Breaker:
    """One breaker for one upstream; ``async with breaker.call(): <model call>``."""

    def __init__(
        self,
        config: BreakerConfig,
        *,
        clock: Clock | None = None,
        connections: RedisConnections | None = None,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        """``connections``: where a shared breaker takes its Redis connection; pass the
        service's registry to share it with the other features (default: its own).
        ``observer`` follows its state and counts its transitions."""
        self.config = config
        self.observer = observer
        self.transitions = 0
        # Call tokens name a probe's slot, also in a store shared by replicas: a random
        # prefix per breaker and a counter are unique without a random draw per call.
        self._token_prefix = f"{uuid.uuid4().hex}:"
        self._tokens = itertools.count()
        # Its series exists from the start: a dashboard shows "closed", not "no data".
        observer.breaker_state(config.name, BreakerState.CLOSED)
        self.store: BreakerStore
        if config.shared and config.backend is not None:
            # The Redis extra is optional: imported only for a Redis URL.
            from genkit_endpoints.policies.breaker.redis import RedisBreakerState  # noqa: PLC0415
            from genkit_endpoints.policies.redis import RedisConnections  # noqa: PLC0415

            registry = connections if connections is not None else RedisConnections()
            connection = registry.acquire(config.backend, config.redis, user="breaker")
            # Wall-clock time: replicas compare each other's opened_at.
            self.store = RedisBreakerState(config, clock or time.time, connection)
        else:
            self.store = MemoryBreakerStore(config, clock or time.monotonic)

    @property
    def state(self) -> BreakerState:
        """The current state (shared: as last seen, at most ``cache_ttl`` old)."""
        return self.store.view()

    @contextlib.asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Admit one upstream call or raise ``BreakerOpen``; record how it ended."""
        token = f"{self._token_prefix}{next(self._tokens)}"
        step = await self.store.acquire(token)
        self._note(step)
        # A shared breaker changes state in other replicas too: report what this one sees.
        self.observer.breaker_state(self.config.name, self.store.view())
        if not step.admitted:
            raise BreakerOpen(step.retry_after)
        try:
            yield
        except asyncio.CancelledError:
            # Shielded: a second cancellation must not skip giving the probe slot back.
            await asyncio.shield(self.store.release(token))
            raise
        except BaseException as exc:
            if counts_as_failure(exc):
                self._note(await self.store.record(True, token))
            else:
                await self.store.release(token)
            raise
        else:
            self._note(await self.store.record(False, token))

    async def aclose(self) -> None:
        """Give the Redis connection back, if any (the app's lifespan calls this)."""
        await self.store.aclose()

    def _note(self, step: Step) -> None:
        if step.transition is None:
            return
        old, new, reason = step.transition
        self.transitions += 1
        self.observer.breaker_transition(self.config.name, str(old), str(new))
        _log.warning(
            "breaker_state_changed",
            breaker=self.config.name,
            to=str(new),
            reason=reason,
            **{"from": str(old)},
        )
