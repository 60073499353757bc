"""Shared-state backends by URL (SPEC §1): ``memory://`` or Redis, parsed once at start-up.

``memory://`` (or no URL) keeps state in the process: exact for one process, per process
with several workers. ``redis://``, ``rediss://`` (TLS) and ``unix://`` share state across
processes and machines. Redis is an optional extra, imported only when a Redis URL is
used, through ``redis.asyncio`` with explicit short timeouts (250 ms by default) and a
sized pool: a slow or dead Redis must cost a request milliseconds, not seconds — every
feature treats a Redis error as an outage with a defined behaviour (fail open, bypass).

Credentials never reach a log or an error message: ``BackendSpec.redacted`` is the only
spelling of the URL the kit prints. Each feature keys under its own namespace
(``<prefix>:rl:``, ``<prefix>:cache:``, ``<prefix>:cb:``) so the three share one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from redis.asyncio import BlockingConnectionPool, Redis

__all__ = [
    "BackendSpec",
    "OutageGate",
    "RedisExtraMissing",
    "RedisOptions",
    "Throttle",
    "parse_backend",
    "redact",
]

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

    def __post_init__(self) -> None:
        if self.connect_timeout_ms <= 0 or self.socket_timeout_ms <= 0:
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

    def redis_pool(self, options: RedisOptions | None = None) -> BlockingConnectionPool:
        """The connection pool every Redis client of the kit uses.

        Blocking, not redis-py's default pool: a burst larger than ``max_connections``
        waits briefly for a free connection instead of failing with
        ``MaxConnectionsError`` — which the features would take for an outage (the rate
        limiter would stop limiting under exactly the load it exists for).
        """
        if self.is_memory:
            raise ValueError("memory:// has no Redis client")
        try:
            from redis.asyncio import BlockingConnectionPool  # noqa: PLC0415 - optional extra
            from redis.asyncio.retry import Retry  # noqa: PLC0415
            from redis.backoff import NoBackoff  # noqa: PLC0415
        except ImportError:
            raise RedisExtraMissing(
                f"{self.redacted} needs the 'redis' extra: pip install 'genkit-endpoints[redis]'"
            ) from None
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


class OutageGate:
    """Keeps requests off a backend that just failed, until a background probe succeeds.

    Without it, every request during an outage pays the full socket timeout (a blackholed
    Redis: 250 ms per call, per feature). After ``failed()``, ``up`` is False and one
    background task runs ``probe`` every ``interval`` seconds; the first success flips
    ``up`` back, so recovery needs no restart and costs requests nothing. Per process.
    """

    def __init__(self, probe: Callable[[], Awaitable[object]], interval: float = 1.0) -> None:
        if not interval > 0:
            raise ValueError("the probe interval must be positive")
        self._probe = probe
        self.interval = interval
        self.up = True
        self._task: asyncio.Task[None] | None = None

    def failed(self) -> None:
        self.up = False
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        while not self.up:
            await asyncio.sleep(self.interval)
            try:
                ok = await self._probe()
            except Exception:  # noqa: S112 - still down: probe again later
                continue
            if ok is not False:
                self.up = True

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


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
