# SPDX-License-Identifier: Apache-2.0
"""Shared-state backends by URL: ``memory://`` or Redis, parsed once at start-up.

``memory://`` (or no URL) keeps state in the process: exact for one process, per process
with several workers. ``redis://``, ``rediss://`` (TLS) and ``unix://`` share state across
processes and machines. This module only parses and checks the URL; the connection itself
— one pool and one outage gate per Redis, shared by every feature — is
``genkit_endpoints.policies.redis``, imported only when a Redis URL is used (Redis is an
optional extra).

Credentials never reach a log or an error message: ``BackendSpec.redacted`` is the only
spelling of the URL the kit prints. Each feature keys under its own namespace
(``<prefix>:rl:``, ``<prefix>:cache:``, ``<prefix>:cb:``) so the three share one Redis.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DEFAULT_NAMESPACE",
    "NAMESPACE_PATTERN",
    "BackendSpec",
    "RedisExtraMissing",
    "RedisOptions",
    "Throttle",
    "check_namespace",
    "parse_backend",
    "redact",
]

# Every feature keys Redis under ``<namespace>:<feature>:…``; one rule and one default for
# all of them, so settings and the configs built in code agree.
DEFAULT_NAMESPACE = "genkit-endpoints"
NAMESPACE_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_NAMESPACE = re.compile(NAMESPACE_PATTERN)


def check_namespace(namespace: str, feature: str) -> None:
    """``ValueError`` naming ``feature`` unless ``namespace`` is a valid key prefix."""
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"the {feature} namespace must be 1-64 letters, digits or _.:- (got {namespace!r})"
        )


Scheme = Literal["memory", "redis", "rediss", "unix"]
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
    """Client limits, in milliseconds. Short on purpose: a slow or dead Redis must cost a
    request milliseconds, not seconds. Features with equal options (and URL) share one
    connection pool."""

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
