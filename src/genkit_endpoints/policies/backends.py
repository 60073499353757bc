"""Shared-state backends by URL: ``memory://`` or Redis, parsed once at start-up.

``memory://`` (or no URL) keeps state in the process: exact for one process, per process
with several workers. ``redis://``, ``rediss://`` (TLS) and ``unix://`` share state across
processes and machines. Redis is an optional extra, imported only when a Redis URL is
used, through ``redis.asyncio`` with explicit short timeouts (250 ms by default) and a
sized pool: a slow or dead Redis must cost a request milliseconds, not seconds. Every
feature treats *any* failure of a Redis call — a redis-py error, a timeout, or whatever
the event loop raises for a connection the server dropped (uvloop raises ``RuntimeError``
for a write on a closed transport) — as that call's outage with a defined fallback, and
``OutageGate`` decides when a failing Redis is down for the whole process.

Credentials never reach a log or an error message: ``BackendSpec.redacted`` is the only
spelling of the URL the kit prints. Each feature keys under its own namespace
(``<prefix>:rl:``, ``<prefix>:cache:``, ``<prefix>:cb:``) so the three share one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

import structlog

if TYPE_CHECKING:
    from redis.asyncio import BlockingConnectionPool, Redis

__all__ = [
    "BackendSpec",
    "OutageGate",
    "RedisExtraMissing",
    "RedisOptions",
    "RedisProbe",
    "Throttle",
    "parse_backend",
    "redact",
]

_log = structlog.get_logger(__name__)
Scheme = Literal["memory", "redis", "rediss", "unix"]
# Seconds a command may wait for a free pooled connection during a burst (not an outage).
_POOL_WAIT = 1.0
_SCHEMES: tuple[Scheme, ...] = ("memory", "redis", "rediss", "unix")


class RedisExtraMissing(RuntimeError):
    """A Redis URL was configured but the ``redis`` package is not installed."""


def redact(url: str) -> str:
    """``url`` without its password (``redis://user:***@host:6379/0``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class RedisOptions:
    """Client limits. Milliseconds; short on purpose (see the module docstring)."""

    connect_timeout_ms: int = 250
    socket_timeout_ms: int = 250
    max_connections: int = 50
    # How long the outage check's PING may take (``RedisProbe``): longer than a request's
    # socket timeout, so a busy process is not taken for a dead Redis.
    probe_timeout_ms: int = 1000

    def __post_init__(self) -> None:
        if min(self.connect_timeout_ms, self.socket_timeout_ms, self.probe_timeout_ms) <= 0:
            raise ValueError("Redis timeouts must be positive")
        if self.max_connections < 1:
            raise ValueError("the Redis pool needs at least one connection")


@dataclass(frozen=True)
class BackendSpec:
    """Where a feature keeps its state. ``url`` holds credentials: never log it."""

    scheme: Scheme
    url: str = field(repr=False)
    redacted: str

    @property
    def is_memory(self) -> bool:
        return self.scheme == "memory"

    def __str__(self) -> str:
        return self.redacted

    def require_client(self) -> None:
        """Raise ``RedisExtraMissing`` now if this backend needs a package that is missing.

        Features call it when they are configured, so a Redis URL without the ``redis``
        extra is one line at start-up rather than an import error on the first request.
        """
        if not self.is_memory and importlib.util.find_spec("redis") is None:
            raise RedisExtraMissing(
                f"{self.redacted} needs the 'redis' extra: pip install 'genkit-endpoints[redis]'"
            )

    def redis_pool(self, options: RedisOptions | None = None) -> BlockingConnectionPool:
        """The connection pool every Redis client of the kit uses.

        Blocking, not redis-py's default pool: a burst larger than ``max_connections``
        waits briefly for a free connection instead of failing with
        ``MaxConnectionsError`` — which the features would take for an outage (the rate
        limiter would stop limiting under exactly the load it exists for).
        """
        if self.is_memory:
            raise ValueError("memory:// has no Redis client")
        self.require_client()
        from redis.asyncio import BlockingConnectionPool  # noqa: PLC0415 - optional extra
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415

        opts = options or RedisOptions()
        pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            self.url,
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

    def redis_client(self, options: RedisOptions | None = None) -> Redis:
        """A ``redis.asyncio`` client on ``redis_pool`` (not connected yet)."""
        from redis.asyncio import Redis  # noqa: PLC0415 - redis_pool checked the extra

        pool = self.redis_pool(options)
        client: Redis = Redis(connection_pool=pool, retry=pool.connection_kwargs["retry"])
        return client


def parse_backend(url: str | None) -> BackendSpec:
    """Validate a backend URL; ``None``/empty is ``memory://``. Raises ``ValueError``."""
    if url is None or not url.strip():
        return BackendSpec("memory", "memory://", "memory://")
    text = url.strip()
    safe = redact(text)
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ValueError(f"not a backend URL: {safe}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"unsupported backend {safe!r}: use memory://, redis://, rediss:// or unix://"
        )
    if scheme == "memory":
        return BackendSpec("memory", "memory://", "memory://")
    if scheme == "unix":
        if not parts.path:
            raise ValueError(f"unix:// needs a socket path: {safe}")
    else:
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"bad port in {safe}") from None
        if not parts.hostname:
            raise ValueError(f"{scheme}:// needs a host: {safe}")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(f"the Redis database must be a number: {safe}")
        del port
    return BackendSpec(scheme, text, safe)


class RedisProbe:
    """``PING`` on a connection of its own, for ``OutageGate``.

    Not through the feature's pool: during the burst that made a call time out, the pool
    may be exhausted and its connections queued behind slow commands, and a probe waiting
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
        self._client = spec.redis_client(own)

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

    ``failures`` counts failed calls, ``outages`` the times the gate went down.
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
    ) -> None:
        if not interval > 0 or not timeout > 0:
            raise ValueError("the probe interval and timeout must be positive")
        self._probe = probe
        self.name = name
        self.backend = backend
        self.interval = interval
        self.timeout = timeout
        self._on_close = on_close
        self.up = True
        self.failures = 0
        self.outages = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_redis(
        cls, spec: BackendSpec, options: RedisOptions | None, *, name: str, interval: float = 1.0
    ) -> OutageGate:
        """A gate whose probe is a ``RedisProbe`` on ``spec`` (closed with the gate)."""
        probe = RedisProbe(spec, options)
        return cls(
            probe,
            name=name,
            backend=spec.redacted,
            interval=interval,
            timeout=probe.timeout,
            on_close=probe.aclose,
        )

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
        while True:
            await asyncio.sleep(self.interval)
            if await self._ok():
                break
        self.up = True
        _log.info("backend_recovered", feature=self.name, backend=self.backend)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._on_close is not None:
            await self._on_close()


class Throttle:
    """``due(now)`` is True at most once per ``interval`` seconds: outage logs, one line
    per interval instead of one per request."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None

    def due(self, now: float) -> bool:
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True
