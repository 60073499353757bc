# SPDX-License-Identifier: Apache-2.0
"""The rate limiter, the cache and the breaker share one Redis connection per Redis.

One pool (so one set of sockets) and one outage gate (so one verdict, logged once) for
all features on the same URL and options; separate ones for different URLs. The
connection lives as long as its last feature: the service's lifespan closes it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio
from structlog.testing import capture_logs

from endpoints_hello.app import APP
from genkit_endpoints.policies.backends import BackendSpec, RedisOptions, parse_backend
from genkit_endpoints.policies.breaker import Breaker, BreakerConfig
from genkit_endpoints.policies.breaker.redis import RedisBreakerState
from genkit_endpoints.policies.cache import CacheConfig, Flight, FlowCache
from genkit_endpoints.policies.cache.redis import RedisStore
from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
from genkit_endpoints.policies.ratelimit.redis import RedisLimits
from genkit_endpoints.policies.redis import RedisConnection, RedisConnections
from genkit_endpoints.serving.app import create_service
from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.redis_server import RedisServer
from tests.unit.asgi_helpers import call, http_scope, lifespan

pytestmark = pytest.mark.timeout(60)


class Features:
    """The three features on one backend, built the way the service builds them: each
    from its own config, all given the service's one registry of connections."""

    def __init__(self, backend: BackendSpec, namespace: str, options: RedisOptions) -> None:
        self.registry = RedisConnections()
        self.limiter = RateLimiter(
            RateLimitConfig(
                rates="100000/minute", backend=backend, redis=options, namespace=namespace
            ),
            connections=self.registry,
        )
        self.cache = FlowCache(
            CacheConfig(backend=backend, redis=options, namespace=namespace),
            connections=self.registry,
        )
        self.breaker = Breaker(
            BreakerConfig(backend=backend, redis=options, namespace=namespace, cache_ttl=0),
            connections=self.registry,
        )

    def connections(self) -> list[RedisConnection]:
        limits, store, state = self.limiter.store, self.cache.store, self.breaker.store
        assert isinstance(limits, RedisLimits)
        assert isinstance(store, RedisStore)
        assert isinstance(state, RedisBreakerState)
        return [limits.connection, store.connection, state.connection]

    async def use(self, n: int) -> None:
        """``n`` concurrent requests' worth of work in each feature."""

        async def cached(i: int) -> None:
            got = await self.cache.begin(f"k{i}")
            if isinstance(got, Flight):
                await got.complete(b"answer")

        async def guarded() -> None:
            async with self.breaker.call():
                pass

        await asyncio.gather(
            *(self.limiter.hit("client") for _ in range(n)),
            *(cached(i) for i in range(n)),
            *(guarded() for _ in range(n)),
        )

    async def aclose(self) -> None:
        await self.limiter.aclose()
        await self.cache.aclose()
        await self.breaker.aclose()


@contextlib.asynccontextmanager
async def features_on(
    url: str, namespace: str, options: RedisOptions | None = None
) -> AsyncIterator[Features]:
    made = Features(parse_backend(url), namespace, options or RedisOptions())
    try:
        yield made
    finally:
        await made.aclose()


async def clients(admin: redis.asyncio.Redis) -> int:
    """Connections to the server other than ``admin``'s own."""
    return len(await admin.client_list()) - 1


async def clients_gone(admin: redis.asyncio.Redis, limit: float = 5) -> bool:
    """Whether every other connection is gone within ``limit`` seconds: Redis drops a
    closed one from CLIENT LIST only once it reads the close."""
    deadline = asyncio.get_running_loop().time() + limit
    while await clients(admin) != 0:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def wait_until(check: Callable[[], bool], what: str, limit: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not {what} within {limit} s"
        await asyncio.sleep(0.02)


async def test_features_on_one_redis_hold_one_connection_and_one_gate(
    redis_server: RedisServer,
) -> None:
    async with features_on(redis_server.url, redis_server.namespace()) as features:
        limits, cache, breaker = features.connections()
        assert limits is cache is breaker
        assert sorted(limits.users) == ["breaker", "cache", "rate_limit"]
        assert features.limiter.gate is limits.gate
        assert len(features.registry) == 1
    assert limits.closed
    assert len(features.registry) == 0


async def test_different_urls_or_options_get_different_connections(
    redis_server: RedisServer,
) -> None:
    namespace = redis_server.namespace()
    other_db = redis_server.url.rsplit("/", 1)[0] + "/1"
    async with (
        features_on(redis_server.url, namespace) as first,
        features_on(other_db, namespace) as second,
        features_on(redis_server.url, namespace, RedisOptions(max_connections=3)) as third,
    ):
        a, b, c = first.connections()[0], second.connections()[0], third.connections()[0]
        assert len({id(a), id(b), id(c)}) == 3
        assert len({id(a.pool), id(b.pool), id(c.pool)}) == 3
        assert len({id(a.gate), id(b.gate), id(c.gate)}) == 3


async def test_the_sockets_of_all_three_features_come_from_one_pool(
    own_redis: RedisServer,
) -> None:
    """With a pool of two, bursts in all three features at once open two sockets in all
    (three pools would open six), and closing the features closes them."""
    admin = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        async with features_on(
            own_redis.url, own_redis.namespace(), RedisOptions(max_connections=2)
        ) as features:
            await features.use(20)
            assert await clients(admin) == 2
            await features.limiter.aclose()  # the others still hold the connection
            await features.use(5)
            assert await clients(admin) == 2
        assert await clients_gone(admin)
    finally:
        await admin.aclose()


async def test_an_outage_one_feature_notices_takes_all_three_off_redis_once(
    redis_server: RedisServer,
) -> None:
    assert redis_server.port is not None
    with fault_proxy(redis_server.port) as proxy, capture_logs() as logs:
        async with features_on(proxy.url(), redis_server.namespace()) as features:
            await features.use(3)
            gate = features.connections()[0].gate
            proxy.set_mode("refuse")
            await features.limiter.hit("client")  # decided locally; the gate checks
            await wait_until(lambda: not gate.up, "down")
            # The cache and the breaker skip Redis without a failed call of their own.
            failures = gate.failures
            assert isinstance(await features.cache.begin("k-new"), Flight)
            async with features.breaker.call():
                pass
            assert gate.failures == failures
            await _outage_ends(proxy, gate_up=lambda: gate.up)
            await features.use(3)
    down = [e for e in logs if e["event"] == "backend_down"]
    back = [e for e in logs if e["event"] == "backend_recovered"]
    assert len(down) == len(back) == 1
    assert down[0]["feature"] == "breaker,cache,rate_limit"


async def _outage_ends(proxy: FaultProxy, *, gate_up: Callable[[], bool]) -> None:
    proxy.set_mode("pass")
    await wait_until(gate_up, "back on Redis")


async def test_the_service_built_from_settings_shares_one_connection_closed_once(
    own_redis: RedisServer,
) -> None:
    """The kit builds the breaker (around model calls), the limiter and the cache from one
    ``REDIS_URL``: requests that use all three hold one socket to Redis, not three, and
    stopping the service closes it."""
    settings = APP.load_settings(
        redis_url=own_redis.url,
        rate_limit_namespace="share",
        cache_namespace="share",
        cb_namespace="share",
        grpc_enabled=False,
    )
    service = create_service(APP, settings)
    admin = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        assert await clients(admin) == 0  # built, not connected: sockets open lazily
        async with lifespan(service.asgi):
            body = b'{"text": "hello", "targetLanguage": "French"}'
            scope = http_scope("/translate", "POST", [(b"content-type", b"application/json")])
            for _ in range(3):  # one after another: a shared pool reuses one socket
                sent = await call(service.asgi, scope, body)
                assert sent.status == 200
            assert await clients(admin) == 1
        assert await clients_gone(admin)
    finally:
        await admin.aclose()


async def test_a_feature_closed_twice_gives_back_only_its_own_share(
    redis_server: RedisServer,
) -> None:
    namespace = redis_server.namespace()
    async with features_on(redis_server.url, namespace) as first:
        connection = first.connections()[0]
        async with features_on(redis_server.url, namespace) as second:
            await second.limiter.aclose()
            await second.limiter.aclose()
            assert connection.users.count("rate_limit") == 1  # first's is still there
            await first.limiter.hit("client")
        assert not connection.closed
    assert connection.closed
