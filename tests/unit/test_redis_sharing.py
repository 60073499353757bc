"""The rate limiter, the cache and the breaker share one Redis connection per Redis.

One pool (so one set of sockets) and one outage gate (so one verdict, logged once) for
all features on the same URL and options; separate ones for different URLs. The
connection lives as long as its last feature: the service's lifespan closes it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio
from genkit import Genkit
from structlog.testing import capture_logs

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from genkit_endpoints.core.errors import UpstreamError
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig, ProviderConfig
from genkit_endpoints.model.providers import choose_model
from genkit_endpoints.policies.backends import BackendSpec, RedisOptions, parse_backend
from genkit_endpoints.policies.breaker import Breaker, BreakerConfig, BreakerState
from genkit_endpoints.policies.breaker.redis import RedisBreakerState
from genkit_endpoints.policies.cache import CacheConfig, Flight, FlowCache
from genkit_endpoints.policies.cache.redis import RedisStore
from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
from genkit_endpoints.policies.ratelimit.redis import RedisLimits
from genkit_endpoints.policies.redis import RedisConnection, process_connections
from genkit_endpoints.serving.service import ServiceConfig, build_service
from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.image_server import offline_fetcher
from tests.support.redis_server import RedisServer, start_redis
from tests.unit.asgi_helpers import lifespan

pytestmark = pytest.mark.timeout(60)


class Features:
    """The three features on one backend, built the way ``build_service`` and the app
    build them: each from its own config, nothing passed between them."""

    def __init__(self, backend: BackendSpec, namespace: str, options: RedisOptions) -> None:
        self.limiter = RateLimiter(
            RateLimitConfig(
                rates="100000/minute", backend=backend, redis=options, namespace=namespace
            )
        )
        self.cache = FlowCache(CacheConfig(backend=backend, redis=options, namespace=namespace))
        self.breaker = Breaker(
            BreakerConfig(backend=backend, redis=options, namespace=namespace, cache_ttl=0)
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


@pytest.fixture
def own_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A Redis no other test talks to, so its client count is this test's alone."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    server = start_redis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def clients(admin: redis.asyncio.Redis) -> int:
    """Connections to the server other than ``admin``'s own."""
    return len(await admin.client_list()) - 1


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
        assert len(process_connections()) == 1
    assert limits.closed
    assert len(process_connections()) == 0


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
        for _ in range(100):  # the server sees the closes a moment later
            if await clients(admin) == 0:
                break
            await asyncio.sleep(0.02)
        assert await clients(admin) == 0
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


async def test_the_service_lifespan_closes_the_shared_connection_once(
    redis_server: RedisServer,
) -> None:
    """``build_service`` builds the limiter and the cache, the app the breaker (handed
    over in ``closing``); all three share one connection, closed when the service stops."""
    backend, namespace = parse_backend(redis_server.url), redis_server.namespace()
    choice = choose_model(ProviderConfig())  # no provider keys: the offline model
    ai = Genkit(plugins=list(choice.plugins), model=choice.model, prompt_dir=PROMPTS_DIR)
    breaker = Breaker(BreakerConfig(backend=backend, namespace=namespace, failure_threshold=1))
    table = build_routes(ai, ModelClient(ai, ModelCallPolicyConfig(), breaker), offline_fetcher())
    cfg = ServiceConfig(
        rate_limit=RateLimitConfig(backend=backend, namespace=namespace),
        cache=CacheConfig(backend=backend, namespace=namespace),
        closing=(breaker,),
        gc_gen0_threshold=None,
    )
    service = build_service(ai, choice, table, cfg)
    state = breaker.store
    assert isinstance(state, RedisBreakerState)
    connection = state.connection
    assert sorted(connection.users) == ["breaker", "cache", "rate_limit"]
    async with lifespan(service.asgi):
        with contextlib.suppress(UpstreamError):
            async with breaker.call():
                raise UpstreamError()  # trips it on the shared Redis
        assert breaker.state is BreakerState.OPEN
    assert connection.closed
    assert connection.users == ()
    assert len(process_connections()) == 0


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
