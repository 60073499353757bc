# SPDX-License-Identifier: Apache-2.0
"""The Redis connection the features share: one pool and one outage gate per Redis.

The rate limiter, the flow cache and the breaker usually point at the same Redis (one
``REDIS_URL``). They share one ``RedisConnection`` — one ``redis.asyncio`` pool and one
``OutageGate`` — so the process holds one set of sockets, and one verdict on whether
Redis is down: an outage one feature notices takes all three off Redis at once, and is
logged once (``backend_down`` / ``backend_recovered``). Features on different URLs, or
with different ``RedisOptions``, get different connections.

``RedisConnections`` hands them out by (URL, options) and counts users: the first
``acquire`` opens a connection (lazily: sockets open at the first command), each feature
``release``\\ s it from its own ``aclose``, and the last release closes pool and probe —
exactly once. The app's lifespan closes the features (``build_service`` closes the rate
limiter and the cache, then the objects in ``ServiceConfig.closing``, the breaker among
them), so the connection closes when the service stops.

Every feature treats *any* failure of a Redis call — a redis-py error, a timeout, or
whatever the event loop raises for a connection the server dropped (uvloop raises
``RuntimeError`` for a write on a closed transport) — as that call's outage with a
defined fallback, and the gate decides when a failing Redis is down for the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from genkit_endpoints.core.health import Readiness, Status
from genkit_endpoints.policies.backends import BackendSpec, RedisOptions
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from redis.asyncio import BlockingConnectionPool, Redis

__all__ = [
    "OutageGate",
    "RedisConnection",
    "RedisConnections",
    "RedisProbe",
    "redis_pool",
]

_log = structlog.get_logger(__name__)
# Seconds a command may wait for a free pooled connection during a burst (not an outage).
_POOL_WAIT = 1.0


def redis_pool(spec: BackendSpec, options: RedisOptions | None = None) -> BlockingConnectionPool:
    """A connection pool with the kit's limits (not connected yet).

    Blocking, not redis-py's default pool: a burst larger than ``max_connections`` waits
    briefly for a free connection instead of failing with ``MaxConnectionsError`` — which
    the features would take for an outage (the rate limiter would stop limiting under
    exactly the load it exists for).
    """
    if spec.is_memory:
        raise ValueError("memory:// has no Redis client")
    spec.require_client()
    from redis.asyncio import BlockingConnectionPool  # noqa: PLC0415 - optional extra
    from redis.asyncio.retry import Retry  # noqa: PLC0415
    from redis.backoff import NoBackoff  # noqa: PLC0415

    opts = options or RedisOptions()
    pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
        spec.url,
        max_connections=opts.max_connections,
        timeout=_POOL_WAIT,
        socket_connect_timeout=opts.connect_timeout_ms / 1000,
        socket_timeout=opts.socket_timeout_ms / 1000,
        health_check_interval=30,
        # No retries inside the client (redis-py 8 retries 10 times with backoff by
        # default: seconds per request on a dead Redis); the caller's outage policy
        # decides at once.
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),
    )
    return pool


def _client(pool: BlockingConnectionPool) -> Redis:
    from redis.asyncio import Redis  # noqa: PLC0415 - redis_pool checked the extra

    client: Redis = Redis(connection_pool=pool, retry=pool.connection_kwargs["retry"])
    return client


class RedisProbe:
    """``PING`` on a connection of its own, for ``OutageGate``.

    Not through the shared pool: during the burst that made a call time out, the pool may
    be exhausted and its connections queued behind slow commands, and a probe waiting
    there would measure the burst, not Redis. Its timeouts are ``RedisOptions.probe_timeout_ms``,
    longer than a request's on purpose: the probe decides whether a whole process stops
    using Redis, so it must not mistake a busy event loop for a dead server. A pooled
    connection the server dropped fails once; the probe then tries a fresh one.
    """

    def __init__(self, spec: BackendSpec, options: RedisOptions | None = None) -> None:
        opts = options or RedisOptions()
        own = RedisOptions(
            connect_timeout_ms=opts.probe_timeout_ms,
            socket_timeout_ms=opts.probe_timeout_ms,
            max_connections=1,
            probe_timeout_ms=opts.probe_timeout_ms,
        )
        self.timeout = opts.probe_timeout_ms / 1000
        self._client = _client(redis_pool(spec, own))

    async def __call__(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception:  # e.g. a dropped connection: once more, on a new one
            return bool(await self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose()


Probe = Callable[[], Awaitable[object]]


class OutageGate:
    """Decides that a backend is down on evidence, not on one failed call.

    Under load a healthy Redis can miss a 250 ms socket timeout (the event loop was busy,
    the machine saturated): that is one slow answer, not an outage. So a failed call only
    costs that call — its caller falls back for that one request (the rate limiter
    counts it locally, the cache calls the flow unshared, the breaker decides locally) —
    and makes the gate check: one background ``probe`` (``RedisProbe``), bounded by its
    own timeout. Only when the probe fails is the gate down: ``up`` turns False and
    callers skip the backend at no cost, while the probe runs again every ``interval``
    seconds; the first success brings ``up`` back, with no restart. Per process.

    ``failures`` counts failed calls, ``outages`` the times the gate went down. ``name``
    says in the logs which features use the backend.
    """

    def __init__(
        self,
        probe: Probe,
        *,
        name: str,
        backend: str,
        interval: float = 1.0,
        timeout: float = 1.0,
        on_close: Callable[[], Awaitable[None]] | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        """``on_change(up)`` hears every verdict change (readiness, metrics)."""
        if not interval > 0 or not timeout > 0:
            raise ValueError("the probe interval and timeout must be positive")
        self._probe = probe
        self.name = name
        self.backend = backend
        self.interval = interval
        self.timeout = timeout
        self._on_close = on_close
        self._on_change = on_change
        self.up = True
        self.failures = 0
        self.outages = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def checking(self) -> bool:
        """A probe is running (after a failed call) or the gate is down."""
        return self._task is not None and not self._task.done()

    def failed(self) -> None:
        """A call to the backend failed: check it in the background (once at a time)."""
        self.failures += 1
        if not self.checking:
            # An empty context: the check outlives the request that happened to fail, and
            # its log lines are not that request's.
            self._task = asyncio.get_running_loop().create_task(
                self._watch(), name=f"{self.name}-outage-probe", context=contextvars.Context()
            )

    async def _ok(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._probe() is not False
        except Exception:  # whatever the failure, the backend did not answer
            return False

    async def _watch(self) -> None:
        if await self._ok():
            return  # one slow or failed call; the backend answers: stay up
        self.up = False
        self.outages += 1
        _log.warning("backend_down", feature=self.name, backend=self.backend)
        self._changed()
        while True:
            await asyncio.sleep(self.interval)
            if await self._ok():
                break
        self.up = True
        _log.info("backend_recovered", feature=self.name, backend=self.backend)
        self._changed()

    def _changed(self) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(self.up)
        except Exception:  # a listener's bug must not stop the watch
            _log.exception("backend_listener_failed", feature=self.name)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._on_close is not None:
            await self._on_close()


class RedisConnection:
    """One Redis for the whole process: ``pool``, a ``client`` on it, and its ``gate``.

    Features never close it themselves: they ``release`` it, and the last release closes
    it (see the module docstring).
    """

    def __init__(
        self,
        spec: BackendSpec,
        options: RedisOptions,
        *,
        on_closed: Callable[[RedisConnection], None] | None = None,
        observer: Observer = NO_OBSERVER,
        readiness: Readiness | None = None,
    ) -> None:
        """``observer`` hears outages; ``readiness`` gets a ``redis:<feature>`` component
        per user: ``ok``, or during an outage ``degraded`` (the feature falls back) or
        ``failing`` (a ``critical`` user, such as a rate limiter that fails closed)."""
        self.spec = spec
        self.options = options
        self.pool = redis_pool(spec, options)
        self.client = _client(self.pool)
        probe = RedisProbe(spec, options)
        self.gate = OutageGate(
            probe,
            name="redis",
            backend=spec.redacted,
            timeout=probe.timeout,
            on_close=probe.aclose,
            on_change=self._gate_changed,
        )
        self.closed = False
        self._users: list[str] = []
        self._critical: set[str] = set()
        self._on_closed = on_closed
        self._observer = observer
        self._readiness = readiness

    @property
    def users(self) -> tuple[str, ...]:
        """The features holding this connection now (one entry per holder)."""
        return tuple(self._users)

    def _join(self, user: str, critical: bool = False) -> None:
        self._users.append(user)
        if critical:
            self._critical.add(user)
        self.gate.name = ",".join(sorted(set(self._users)))
        self._report(user)

    def _report(self, user: str) -> None:
        if self._readiness is None:
            return
        down: Status = "failing" if user in self._critical else "degraded"
        self._readiness.set_status(f"redis:{user}", "ok" if self.gate.up else down)

    def _gate_changed(self, up: bool) -> None:
        self._observer.backend_state(self.gate.name, up)
        for user in set(self._users):
            self._report(user)

    def probe_every(self, seconds: float) -> None:
        """Ask for the outage probe at least this often; the most eager feature wins."""
        self.gate.interval = min(self.gate.interval, max(seconds, 0.05))

    async def release(self, user: str) -> None:
        """``user`` is done with the connection; the last one out closes it."""
        if user in self._users:
            self._users.remove(user)
        if self._users or self.closed:
            return
        await self.aclose()

    async def aclose(self) -> None:
        """Close the probe and every pooled socket (once; later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        if self._on_closed is not None:
            self._on_closed(self)
        await self.gate.aclose()
        await self.client.aclose()
        await self.pool.disconnect()


class RedisConnections:
    """Open ``RedisConnection``\\ s by (URL, options): ``acquire`` shares, ``release`` closes.

    Features share a connection only through the registry they are given: the service
    builds one and hands it to the limiter, the cache and the breaker. A feature built
    without one gets a registry of its own, so it never shares by accident.
    """

    def __init__(
        self, *, observer: Observer = NO_OBSERVER, readiness: Readiness | None = None
    ) -> None:
        """``observer`` and ``readiness`` follow every connection's outages (see
        ``RedisConnection``)."""
        self._open: dict[tuple[str, RedisOptions], RedisConnection] = {}
        self.observer = observer
        self.readiness = readiness

    def __len__(self) -> int:
        return len(self._open)

    def acquire(
        self,
        spec: BackendSpec,
        options: RedisOptions | None,
        *,
        user: str,
        critical: bool = False,
    ) -> RedisConnection:
        """The connection for ``spec`` and ``options``, opened if none is; ``user`` names
        the feature in logs and readiness and must ``release`` it once; ``critical``: the
        feature cannot serve while Redis is down (readiness ``failing``, not ``degraded``)."""
        opts = options or RedisOptions()
        key = (spec.url, opts)
        conn = self._open.get(key)
        if conn is None:
            conn = RedisConnection(
                spec,
                opts,
                on_closed=lambda c: self._forget(key, c),
                observer=self.observer,
                readiness=self.readiness,
            )
            self._open[key] = conn
        conn._join(user, critical)
        return conn

    def features(self) -> list[str]:
        """The feature lists of the open connections, as the metrics label them."""
        return [conn.gate.name for conn in self._open.values()]

    def _forget(self, key: tuple[str, RedisOptions], conn: RedisConnection) -> None:
        if self._open.get(key) is conn:
            del self._open[key]
