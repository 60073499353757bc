# SPDX-License-Identifier: Apache-2.0
"""The flow cache's Redis store: cluster-wide values and one flow call per cluster.

Keys live under ``<namespace>:cache:`` — ``v:<key>`` the value (``PX`` = the TTL),
``l:<key>`` the single-flight lease (``SET NX PX lock_timeout`` with a random token) and
``f:<key>:<token>`` the failure of the leader holding that token, kept a few seconds so
the waiters of that leader — and only they — receive it. Claiming and settling are Lua
scripts (``lua/cache_*.lua``): the check-then-set and the compare-and-delete of the
lease are atomic.

Waiters poll with bounded backoff (5 ms doubling to 200 ms) for up to the wait timeout;
a leader that dies leaves a lease that expires, and the next poll takes it over. When a
Redis call fails — any failure: refused, reset, timed out — that request bypasses the
store (its flow runs unshared across processes, still single-flight in this process, and
nothing is stored), logged at most once per ``outage_log_interval``, never an error for
the client. Only when the shared ``OutageGate``'s health probe confirms Redis is down do
all requests bypass it, until it answers again. The store runs on the process's shared
``RedisConnection`` (pool and gate), which it releases when closed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from importlib.resources import files
from typing import Any

import orjson
import structlog

from genkit_endpoints.core.errors import EndpointError, InternalError
from genkit_endpoints.policies.backends import Throttle
from genkit_endpoints.policies.cache.base import CacheConfig, Lease
from genkit_endpoints.policies.redis import OutageGate, RedisConnection

__all__ = ["RedisStore"]

_log = structlog.get_logger(__name__)
_FAILURE_MS = 5_000  # outlives every waiter's next poll; new requests never look at it
_FIRST_DELAY, _MAX_DELAY = 0.005, 0.2


def _script(name: str) -> str:
    return files("genkit_endpoints.policies").joinpath("lua", name).read_text(encoding="utf-8")


class RedisStore:
    """A ``CacheStore`` on Redis; cluster-wide (see the module docstring for limits)."""

    def __init__(self, config: CacheConfig, connection: RedisConnection) -> None:
        self.config = config
        self.connection = connection
        self._released = False
        self._client = connection.client
        self._prefix = f"{config.namespace}:cache:"
        self._claim = self._client.register_script(_script("cache_claim.lua"))
        self._settle = self._client.register_script(_script("cache_settle.lua"))
        self._ttl_ms = max(1, int(config.ttl * 1000))
        self._lease_ms = max(1, int(config.lock_timeout * 1000))
        self._outage_log = Throttle(config.outage_log_interval)
        self.gate: OutageGate = connection.gate

    def _outage(self, exc: BaseException) -> None:
        self.gate.failed()
        if self._outage_log.due(time.monotonic()):
            _log.warning(
                "cache_bypassed",
                reason="redis unavailable",
                backend=self.config.backend.redacted,
                error=type(exc).__name__,
            )

    async def claim(self, key: str) -> bytes | Lease:
        if not self.gate.up:
            return Lease()  # bypass: the flow runs unshared, nothing is stored
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.max_wait
        value_key, lease_key = self._prefix + "v:" + key, self._prefix + "l:" + key
        observed, delay = "", _FIRST_DELAY
        while True:
            token = secrets.token_hex(16)
            failure_key = f"{self._prefix}f:{key}:{observed}"
            try:
                status, data = await self._claim(
                    keys=[value_key, lease_key, failure_key], args=[token, self._lease_ms]
                )
            except Exception as exc:  # any failure of the store is its outage
                self._outage(exc)
                return Lease()
            if status == b"hit":
                return bytes(data)
            if status == b"lead":
                return Lease(token)
            if status == b"fail":
                raise _decode_error(bytes(data))
            observed = data.decode() if isinstance(data, bytes) else str(data)
            if loop.time() >= deadline:
                # The leader is slow but alive: answer this request ourselves, unshared.
                _log.warning("cache_wait_timeout", waited=self.config.max_wait)
                return Lease()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def settle(
        self, key: str, lease: Lease, value: bytes | None, failure: EndpointError | None
    ) -> None:
        if not self.gate.up:
            return  # bypassing a dead Redis: nothing is stored
        token = lease.token or ""
        if value is not None:
            target, payload, ttl = self._prefix + "v:" + key, value, self._ttl_ms
        elif failure is not None and token:
            target, payload, ttl = (
                f"{self._prefix}f:{key}:{token}",
                _encode_error(failure),
                _FAILURE_MS,
            )
        elif token:
            target, payload, ttl = self._prefix + "v:" + key, b"", 0
        else:
            return
        try:
            await self._settle(keys=[self._prefix + "l:" + key, target], args=[token, payload, ttl])
        except Exception as exc:  # any failure of the store is its outage
            self._outage(exc)

    async def aclose(self) -> None:
        """Give the shared connection back (the last feature to do so closes it)."""
        if not self._released:  # closing twice must not release another holder's share
            self._released = True
            await self.connection.release("cache")


def _encode_error(err: EndpointError) -> bytes:
    doc: dict[str, Any] = {"type": type(err).__name__, "detail": err.detail}
    if err.errors:
        doc["errors"] = err.errors
    if err.headers:
        doc["headers"] = err.headers
    return orjson.dumps(doc)


def _error_types() -> dict[str, type[EndpointError]]:
    found: dict[str, type[EndpointError]] = {}
    todo: list[type[EndpointError]] = [EndpointError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def _decode_error(data: bytes) -> EndpointError:
    """The leader's error, rebuilt as the same type (status and gRPC code) and detail."""
    try:
        doc = orjson.loads(data)
        cls = _error_types().get(str(doc["type"]), InternalError)
        # Not cls(...): subclasses may take other constructor arguments (MethodNotAllowed).
        err = cls.__new__(cls)
        EndpointError.__init__(
            err, str(doc["detail"]), errors=doc.get("errors"), headers=doc.get("headers")
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return InternalError()
    return err
