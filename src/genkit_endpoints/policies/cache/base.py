# SPDX-License-Identifier: Apache-2.0
"""The flow cache's shared parts: its config, its storage protocol, leases and keys.

A key is the SHA-256 of the flow's name, its version (computed per flow from its
source, prompts, model and model configuration: ``core.versions``), the canonical JSON
of the validated input and, with ``scope="principal"``, the caller (``FlowCache.key``).
Values are opaque bytes: ``routes`` decides what a unary answer or a completed stream
looks like. A ``CacheStore`` keeps them: ``memory`` in the process, ``redis`` cluster-wide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from genkit_endpoints.core.errors import EndpointError
from genkit_endpoints.policies.backends import (
    DEFAULT_NAMESPACE,
    BackendSpec,
    RedisOptions,
    check_namespace,
    parse_backend,
)

__all__ = ["CacheConfig", "CacheStore", "Lease"]


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
    namespace: str = DEFAULT_NAMESPACE
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
        check_namespace(self.namespace, "cache")
        self.backend.require_client()

    @property
    def max_wait(self) -> float:
        return self.lock_timeout if self.wait_timeout is None else self.wait_timeout


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
