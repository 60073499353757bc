# SPDX-License-Identifier: Apache-2.0
"""Canaries for what the kit relies on in ``limits``; run them before widening its range.

The limiter hands ``limits``' Redis storage the shared pool: if a release stopped using
a pool it is given (and opened its own from the URI), the process would hold a second
pool the service never closes and the shared outage gate would judge connections the
limiter does not use. These tests build the storage exactly as the limiter does, against
a real Redis.
"""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from genkit_endpoints import compat
from genkit_endpoints.compat import UnsupportedDependency
from genkit_endpoints.compat import limits as compat_limits
from genkit_endpoints.compat.limits import redis_storage
from genkit_endpoints.policies.backends import parse_backend
from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
from genkit_endpoints.policies.redis import redis_pool
from tests.support.redis_server import RedisServer
from tests.support.server import free_port


def _uri(url: str) -> str:
    return "async+" + url


async def test_limits_storage_sends_its_commands_over_the_pool_it_is_given(
    redis_server: RedisServer,
) -> None:
    name = f"canary-{uuid.uuid4().hex[:12]}"
    pool = redis.asyncio.BlockingConnectionPool.from_url(redis_server.url, client_name=name)
    admin = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        storage = redis_storage(
            _uri(redis_server.url), pool, key_prefix=f"{redis_server.namespace()}:rl"
        )
        assert await MovingWindowRateLimiter(storage).hit(parse("5/minute"), "k")
        named = [c for c in await admin.client_list() if c.get("name") == name]
        assert len(named) == 1  # limits used our pool, not a client of its own
    finally:
        await pool.disconnect()
        await admin.aclose()


async def test_limits_storage_wraps_redis_errors_with_the_cause_kept() -> None:
    """The limiter logs the cause's type and treats any failure as an outage."""
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    pool = redis_pool(parse_backend(url))
    try:
        storage = redis_storage(_uri(url), pool, key_prefix="canary:rl")
        with pytest.raises(StorageError) as info:
            await MovingWindowRateLimiter(storage).hit(parse("5/minute"), "k")
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
    finally:
        await pool.disconnect()


def test_the_installed_limits_is_in_the_supported_range() -> None:
    assert compat_limits.require_limits() == compat.installed_version("limits")


@pytest.mark.parametrize("version", ["6.0.0", "6.0rc1", "3.14.1"])
def test_a_limits_outside_the_range_fails_building_a_limiter_with_one_line(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(
        compat, "installed_version", lambda dist: version if dist == "limits" else "0"
    )
    with pytest.raises(UnsupportedDependency) as info:
        RateLimiter(RateLimitConfig())
    message = str(info.value)
    assert "\n" not in message
    assert f"limits {version} is not supported" in message
    assert ">=4.0,<6" in message
