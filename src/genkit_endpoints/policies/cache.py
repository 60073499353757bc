"""The flow cache: answers of idempotent flows by key, with single-flight.

A key is the SHA-256 of the flow's name, its version fingerprint (prompt, model and model
configuration: ``fingerprint``), the canonical JSON of the validated input and, with
``scope="principal"``, the caller. Values are opaque bytes: ``routes`` decides what a
unary answer or a completed stream looks like.

Single-flight happens at two levels. In one process, concurrent identical misses share
one future: one leader calls the flow, the others await its result — or its failure,
which is never stored, so the next request retries. With Redis the leader additionally
takes a lease (``cache_redis``) so one process of the cluster calls the flow while the
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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
import structlog
from pydantic import BaseModel

from genkit_endpoints.core.context import current_principal
from genkit_endpoints.core.errors import EndpointError
from genkit_endpoints.policies.backends import BackendSpec, RedisOptions, parse_backend

__all__ = ["CacheConfig", "CacheStore", "Flight", "FlowCache", "Lease", "fingerprint"]

_log = structlog.get_logger(__name__)
Clock = Callable[[], float]


@dataclass(frozen=True)
class CacheConfig:
    """How answers are cached. Seconds throughout.

    ``lock_timeout`` is the Redis lease: how long a leader may take before another process
    takes over (set it above the slowest model call). ``wait_timeout`` bounds how long a
    waiter polls for another process's answer before calling the flow itself (None: the
    lease time).
    """

    ttl: float = 3600
    max_entries: int = 1024
    scope: Literal["global", "principal"] = "global"
    backend: BackendSpec = field(default_factory=lambda: parse_backend(None))
    redis: RedisOptions = field(default_factory=RedisOptions)
    lock_timeout: float = 120
    wait_timeout: float | None = None
    namespace: str = "genkit"
    outage_log_interval: float = 60

    def __post_init__(self) -> None:
        if self.ttl <= 0:
            raise ValueError("the cache TTL must be positive")
        if self.max_entries < 1:
            raise ValueError("the cache needs room for at least one entry")
        if self.scope not in ("global", "principal"):
            raise ValueError(f"cache scope must be 'global' or 'principal', not {self.scope!r}")
        if self.lock_timeout <= 0:
            raise ValueError("the cache lock timeout must be positive")
        if self.wait_timeout is not None and self.wait_timeout < 0:
            raise ValueError("the cache wait timeout must not be negative")
        if not self.namespace or any(c.isspace() for c in self.namespace):
            raise ValueError("the cache namespace must be a non-empty word")
        self.backend.require_client()

    @property
    def max_wait(self) -> float:
        return self.lock_timeout if self.wait_timeout is None else self.wait_timeout


def fingerprint(*parts: str) -> str:
    """A version fingerprint from what decides a flow's answer (prompt, model, config).

    Apps set ``FlowRoute.version`` with it; any changed part changes every key of the flow,
    so a new prompt or model never serves answers made by the old one.
    """
    return hashlib.sha256(orjson.dumps(list(parts))).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Lease:
    """The right (and duty) to fill one key. ``token`` is None without a cluster lease."""

    token: str | None = None
    observed: str | None = field(default=None, compare=False)


class CacheStore(Protocol):
    """Where values live. ``claim`` returns the value, or a lease to fill the key.

    ``claim`` may wait for another process's answer and may raise the ``EndpointError``
    that process failed with. Implementations never raise storage errors: an outage is a
    miss (``claim``) or a no-op (``settle``).
    """

    async def claim(self, key: str) -> bytes | Lease: ...

    async def settle(
        self, key: str, lease: Lease, value: bytes | None, failure: EndpointError | None
    ) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """TTL + LRU by entry count, for one process. Expired entries go on access and in a
    sweep at most once per ``sweep_every`` seconds (amortised over writes)."""

    def __init__(self, ttl: float, max_entries: int, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.sweep_every = min(ttl, 60.0)
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        now = self._clock()
        self._entries[key] = (now + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if now - self._swept >= self.sweep_every:
            self.sweep()

    def sweep(self) -> int:
        """Drop every expired entry; returns how many went."""
        now = self._swept = self._clock()
        dead = [k for k, (expires, _) in self._entries.items() if expires <= now]
        for k in dead:
            del self._entries[k]
        return len(dead)

    async def claim(self, key: str) -> bytes | Lease:
        value = self.get(key)
        return Lease() if value is None else value

    async def settle(
        self, key: str, lease: Lease, value: bytes | None, failure: EndpointError | None
    ) -> None:
        if value is not None:
            self.put(key, value)

    async def aclose(self) -> None:
        self._entries.clear()


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
        self, config: CacheConfig, *, clock: Clock = time.monotonic, store: CacheStore | None = None
    ) -> None:
        self.config = config
        self._store: CacheStore = store if store is not None else _make_store(config, clock)
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

    async def begin(self, key: str, *, read: bool = True) -> bytes | Flight:
        """The cached value, or a ``Flight`` that makes this request the one filling it.

        Raises the ``EndpointError`` a concurrent leader failed with. ``read=False``
        (``Cache-Control: no-cache``) skips the lookup and the single-flight but stores.
        """
        if not read:
            return Flight(self, key, Lease(), None)
        for _ in range(_MAX_ROUNDS):
            pending = self._inflight.get(key)
            if pending is None:
                break
            try:
                # shield: a waiter that goes away must not cancel the leader's future.
                return await asyncio.shield(pending)
            except _LeaderGone:
                continue
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
            return got
        flight._lease = got
        return flight

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


def _make_store(config: CacheConfig, clock: Clock) -> CacheStore:
    if config.backend.is_memory:
        return MemoryStore(config.ttl, config.max_entries, clock)
    from genkit_endpoints.policies.cache_redis import RedisStore  # noqa: PLC0415 - optional extra

    return RedisStore(config)
