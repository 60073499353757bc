# SPDX-License-Identifier: Apache-2.0
"""The flow cache: answers of idempotent flows by key, with single-flight.

Single-flight happens at two levels. In one process, concurrent identical misses share
one future: one leader calls the flow, the others await its result — or its failure,
which is never stored, so the next request retries. With Redis the leader additionally
takes a lease (``cache.redis``) so one process of the cluster calls the flow while the
others poll for the value. A leader that goes away without an answer (the client left,
a stream was cut) releases its waiters, who try again themselves.

Limits, plainly: ``memory://`` is per process (with several workers each holds its own
entries and single-flight is per worker), bounded by ``max_entries`` (LRU) and ``ttl``.
Redis is cluster-wide; when it cannot be reached the cache is bypassed (the flow is
called directly, logged once per interval), never an error for the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from pydantic import BaseModel

from genkit_endpoints.core.context import current_principal, record_var
from genkit_endpoints.core.errors import EndpointError
from genkit_endpoints.policies.cache.base import CacheConfig, CacheStore, Lease
from genkit_endpoints.policies.cache.memory import MemoryStore
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from genkit_endpoints.policies.redis import RedisConnections

__all__ = ["Flight", "FlowCache"]

_log = structlog.get_logger(__name__)
Clock = Callable[[], float]


class _LeaderGone(Exception):
    """The local leader ended without an answer (cancelled, cut): waiters try again."""


_MAX_ROUNDS = 5  # a waiter whose leaders keep vanishing leads itself after this many


class Flight:
    """A miss being filled by this request: exactly one of ``complete``, ``fail`` or
    ``abandon`` must follow (``routes`` does it in ``try``/``except``)."""

    def __init__(
        self, cache: FlowCache, key: str, lease: Lease, future: asyncio.Future[bytes] | None
    ) -> None:
        self._cache = cache
        self.key = key
        self._lease = lease
        self._future = future

    def _resolve(self, value: bytes | None, error: BaseException | None) -> None:
        fut, self._future = self._future, None
        if fut is None:
            return
        if self._cache._inflight.get(self.key) is fut:
            del self._cache._inflight[self.key]
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value or b"")

    async def complete(self, value: bytes) -> None:
        """Store ``value`` and hand it to the waiters."""
        self._resolve(value, None)
        # One line per flow run that fills the cache: operators (and the cluster test)
        # count runs per key across processes by it.
        _log.debug("cache_fill", key=self.key[:16], shared=self._lease.token is not None)
        await self._cache._store.settle(self.key, self._lease, value, None)

    async def fail(self, error: EndpointError) -> None:
        """Share ``error`` with the current waiters; nothing is stored."""
        self._resolve(None, error)
        await self._cache._store.settle(self.key, self._lease, None, error)

    def abandon(self) -> None:
        """No answer (cancelled, truncated): waiters retry; the lease is released soon."""
        self._resolve(None, _LeaderGone())
        self._cache._spawn(self._cache._store.settle(self.key, self._lease, None, None))


class FlowCache:
    """Cache + single-flight over a ``CacheStore``; transport-agnostic."""

    def __init__(
        self,
        config: CacheConfig,
        *,
        clock: Clock = time.monotonic,
        store: CacheStore | None = None,
        connections: RedisConnections | None = None,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        """``store`` overrides the one ``config.backend`` names; a Redis store takes its
        connection from ``connections``; pass the service's registry to share it (default:
        its own). ``observer`` counts the results (hit, miss, coalesced, bypass)."""
        self.config = config
        self.observer = observer
        self._store: CacheStore = (
            store if store is not None else _make_store(config, clock, connections)
        )
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def store(self) -> CacheStore:
        return self._store

    @property
    def inflight(self) -> int:
        """Keys being filled in this process right now (0 when idle: no side tables)."""
        return len(self._inflight)

    def key(self, flow: str, version: str, payload: BaseModel, mode: str = "unary") -> str:
        """The cache key of one request; reads the principal from the context."""
        principal = ""
        if self.config.scope == "principal":
            who = current_principal()
            principal = f"{who.method}:{who.name}" if who is not None else ""
        canonical = orjson.dumps(payload.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        head = orjson.dumps([flow, version, mode, principal])
        return hashlib.sha256(head + b"\n" + canonical).hexdigest()

    async def begin(self, key: str, *, read: bool = True, flow: str = "") -> bytes | Flight:
        """The cached value, or a ``Flight`` that makes this request the one filling it.

        Raises the ``EndpointError`` a concurrent leader failed with. ``read=False``
        (``Cache-Control: no-cache``) skips the lookup and the single-flight but stores.
        ``flow`` labels the result in the metrics.
        """
        if not read:
            self._result(flow, "bypass")
            return Flight(self, key, Lease(), None)
        for _ in range(_MAX_ROUNDS):
            pending = self._inflight.get(key)
            if pending is None:
                break
            try:
                # shield: a waiter that goes away must not cancel the leader's future.
                value = await asyncio.shield(pending)
            except _LeaderGone:
                continue
            self._result(flow, "coalesced")
            return value
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        future.add_done_callback(_retrieve)
        self._inflight[key] = future
        flight = Flight(self, key, Lease(), future)
        try:
            got = await self._store.claim(key)
        except EndpointError as err:  # another process's leader failed: shared
            flight._resolve(None, err)
            raise
        except BaseException:
            flight._resolve(None, _LeaderGone())
            raise
        if isinstance(got, bytes):
            flight._resolve(got, None)
            self._result(flow, "hit")
            return got
        flight._lease = got
        self._result(flow, "miss")
        return flight

    def _result(self, flow: str, result: str) -> None:
        self.observer.cache_result(flow, result)
        record = record_var.get()
        if record is not None:
            record.cache = result

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        for task in list(self._background):
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 1)
        await self._store.aclose()


def _retrieve(future: asyncio.Future[bytes]) -> None:
    # A failure nobody awaited is expected (no waiters); asyncio must not log it.
    if not future.cancelled():
        future.exception()


def _make_store(
    config: CacheConfig, clock: Clock, connections: RedisConnections | None
) -> CacheStore:
    if config.backend.is_memory:
        return MemoryStore(config.ttl, config.max_entries, clock)
    # The Redis extra is optional: imported only for a Redis URL.
    from genkit_endpoints.policies.cache.redis import RedisStore  # noqa: PLC0415
    from genkit_endpoints.policies.redis import RedisConnections  # noqa: PLC0415

    registry = connections if connections is not None else RedisConnections()
    return RedisStore(config, registry.acquire(config.backend, config.redis, user="cache"))
