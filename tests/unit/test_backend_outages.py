# SPDX-License-Identifier: Apache-2.0
"""Redis failing under the rate limiter, the flow cache and the shared breaker.

Run on uvloop, the event loop the servers use by default: it raises ``RuntimeError``
("the handler is closed") when a pooled connection the server reset is written to, where
the standard loop would surface a redis-py ``ConnectionError``. Faults come from a TCP
fault proxy in front of a real Redis and start while the pool already holds connections
(refused and reset, blackholed) — a fresh pool only ever sees a refused connect.

Three promises are checked for each feature:

* any failure of a Redis call is that call's outage with the feature's fallback, never an
  exception for the caller (which would be a 500);
* one slow answer (a healthy Redis behind a saturated machine) costs only that call: the
  feature stays on Redis, so the limiter keeps counting cluster-wide, the cache keeps
  sharing and the breaker keeps seeing the cluster's state;
* while Redis is down, what the fallbacks admit is bounded (the limiter counts in the
  process at the configured rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, Literal

import pytest
import uvloop

from genkit_endpoints.core.errors import UpstreamError
from genkit_endpoints.policies.backends import RedisExtraMissing, RedisOptions, parse_backend
from genkit_endpoints.policies.breaker import Breaker, BreakerConfig, BreakerOpen
from genkit_endpoints.policies.breaker.redis import RedisBreakerState
from genkit_endpoints.policies.cache import CacheConfig, Flight, FlowCache
from genkit_endpoints.policies.cache.redis import RedisStore
from genkit_endpoints.policies.ratelimit import Decision, RateLimitConfig, RateLimiter
from genkit_endpoints.policies.ratelimit.redis import RedisLimits
from genkit_endpoints.policies.redis import OutageGate
from tests.support.fault_proxy import FaultProxy, fault_proxy
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(90)

Fault = Literal["refuse", "reset", "blackhole"]
FAULTS: tuple[Fault, ...] = ("refuse", "reset", "blackhole")
SLOW = 0.6  # seconds one answer is held back: past the 250 ms socket timeout


def on_uvloop(scenario: Coroutine[Any, Any, None]) -> None:
    """Run one test's scenario on a fresh uvloop event loop."""
    uvloop.run(scenario)


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[FaultProxy]:
    assert redis_server.port is not None
    with fault_proxy(redis_server.port) as p:
        yield p


async def wait_until(check: Callable[[], bool], what: str, limit: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not {what} within {limit} s"
        await asyncio.sleep(0.02)


async def settled(gate: OutageGate) -> None:
    """Wait for the gate's health probe, if one runs, to reach its verdict."""
    await wait_until(lambda: not gate.checking or not gate.up, "checked")


# --- the three features, each driven the way requests drive it ------------------------


class Feature:
    """One feature on Redis behind the proxy, with one operation a request performs."""

    gate: OutageGate

    async def op(self) -> object: ...

    async def aclose(self) -> None: ...


class Limiter(Feature):
    def __init__(self, url: str, namespace: str, rates: str = "100000/minute") -> None:
        cfg = RateLimitConfig(rates=rates, backend=parse_backend(url), namespace=namespace)
        self.limiter = RateLimiter(cfg)
        assert self.limiter.gate is not None
        self.gate = self.limiter.gate

    async def op(self) -> object:
        return await self.limiter.hit("client")

    async def aclose(self) -> None:
        await self.limiter.aclose()


class Cache(Feature):
    def __init__(self, url: str, namespace: str) -> None:
        self.cache = FlowCache(CacheConfig(backend=parse_backend(url), namespace=namespace))
        store = self.cache.store
        assert isinstance(store, RedisStore)
        self.gate = store.gate
        self.n = 0

    async def op(self) -> object:
        self.n += 1
        got = await self.cache.begin(f"key-{self.n % 7}")
        if isinstance(got, Flight):
            await got.complete(b"answer")
        return got

    async def aclose(self) -> None:
        await self.cache.aclose()


class SharedBreaker(Feature):
    def __init__(self, url: str, namespace: str, **kwargs: float) -> None:
        cfg = BreakerConfig(backend=parse_backend(url), namespace=namespace, cache_ttl=0, **kwargs)  # type: ignore[arg-type]
        self.breaker = Breaker(cfg)
        store = self.breaker.store
        assert isinstance(store, RedisBreakerState)
        self.gate = store.gate

    async def op(self) -> object:
        async with self.breaker.call():
            return "called"

    async def trip(self) -> None:
        for _ in range(self.breaker.config.failure_threshold):
            with pytest.raises(UpstreamError):
                async with self.breaker.call():
                    raise UpstreamError()

    async def aclose(self) -> None:
        await self.breaker.aclose()


FEATURES: dict[str, Callable[[str, str], Feature]] = {
    "limiter": Limiter,
    "cache": Cache,
    "breaker": SharedBreaker,
}


@contextlib.asynccontextmanager
async def feature_on(name: str, proxy: FaultProxy, namespace: str) -> AsyncIterator[Feature]:
    made = FEATURES[name](proxy.url(), namespace)
    try:
        yield made
    finally:
        await made.aclose()


async def burst(op: Callable[[], Awaitable[object]], n: int) -> None:
    await asyncio.gather(*(op() for _ in range(n)))


# --- any failure is an outage -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FEATURES))
@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_on_pooled_connections_is_an_outage_never_an_error(
    name: str, fault: Fault, proxy: FaultProxy, redis_server: RedisServer
) -> None:
    async def scenario() -> None:
        async with feature_on(name, proxy, redis_server.namespace()) as feature:
            await burst(feature.op, 20)  # the pool now holds open connections
            assert feature.gate.up
            proxy.set_mode(fault)
            await asyncio.sleep(0.2)  # the loop notices the dropped connections
            for _ in range(5):
                await feature.op()  # answered by the fallback: nothing raises
            await wait_until(lambda: not feature.gate.up, "down")  # the probe confirmed it
            assert feature.gate.outages == 1
            await feature.op()  # skipping Redis entirely
            proxy.set_mode("pass")
            await wait_until(lambda: feature.gate.up, "back on Redis")
            await burst(feature.op, 10)

    on_uvloop(scenario())


# --- a slow answer is not an outage --------------------------------------------------------


def test_one_slow_answer_does_not_stop_the_limiter_counting_on_redis(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    limiter = Limiter(proxy.url(), redis_server.namespace(), rates="20/minute")
    admitted = 0

    async def scenario() -> None:
        nonlocal admitted
        try:
            for i in range(60):
                if i == 5:
                    proxy.delay_responses(SLOW)  # this request's call times out
                admitted += (await limiter.limiter.hit("client")).allowed
            # The timed-out request was decided locally (admitted); every other one was
            # counted on Redis. Taking the process off Redis at the first timeout admitted
            # the 54 requests after it.
            assert 20 <= admitted <= 21, admitted
            await settled(limiter.gate)
        finally:
            await limiter.aclose()

    on_uvloop(scenario())
    assert limiter.gate.up
    assert limiter.gate.failures == 1


def test_one_slow_answer_does_not_stop_the_cache_sharing_answers(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    namespace = redis_server.namespace()
    hits: list[object] = []

    async def scenario() -> None:
        filler, reader = Cache(proxy.url(), namespace), Cache(proxy.url(), namespace)
        try:
            flight = await filler.cache.begin("k")
            assert isinstance(flight, Flight)
            await flight.complete(b"shared answer")
            proxy.delay_responses(SLOW)
            bypassed = await reader.cache.begin("k")
            assert isinstance(bypassed, Flight)  # that one request runs its flow itself
            bypassed.abandon()
            for _ in range(5):
                got = await reader.cache.begin("k")
                if isinstance(got, Flight):  # a miss: this request would run the flow
                    got.abandon()
                hits.append(got)
            assert hits == [b"shared answer"] * 5
            await settled(reader.gate)
            assert reader.gate.up
        finally:
            await filler.aclose()
            await reader.aclose()

    on_uvloop(scenario())


def test_one_slow_answer_does_not_hide_the_clusters_open_breaker(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    namespace = redis_server.namespace()
    refused = 0

    async def scenario() -> None:
        nonlocal refused
        options = {"failure_threshold": 2, "recovery_timeout": 60}
        tripper = SharedBreaker(proxy.url(), namespace, **options)
        other = SharedBreaker(proxy.url(), namespace, **options)
        try:
            await tripper.trip()
            proxy.delay_responses(SLOW)
            assert await other.op() == "called"  # decided locally, where it is still closed
            for _ in range(5):
                try:
                    await other.op()
                except BreakerOpen:
                    refused += 1
            assert refused == 5  # back on Redis at once: the cluster's breaker is open
            await settled(other.gate)
            assert other.gate.up
        finally:
            await tripper.aclose()
            await other.aclose()

    on_uvloop(scenario())


def test_an_exhausted_pool_is_not_an_outage_the_probe_has_its_own_connection(
    redis_server: RedisServer,
) -> None:
    """A burst can hold every pooled connection: a call then waits for one, gives up and
    fails over to the local count. The probe that then decides about an outage must not
    queue behind that burst: on a connection of its own it reaches Redis at once, so the
    process stays on Redis. (A probe in the shared pool would time out waiting there and
    take the whole process off Redis because of its own load.)"""
    cfg = RateLimitConfig(
        rates="100000/minute",
        backend=parse_backend(redis_server.url),
        namespace=redis_server.namespace(),
        redis=RedisOptions(max_connections=1),
    )
    limiter = RateLimiter(cfg)
    gate = limiter.gate
    assert gate is not None
    shared = limiter.store
    assert isinstance(shared, RedisLimits)
    pool = shared.connection.pool
    fallback: list[Decision] = []

    async def scenario() -> None:
        try:
            assert (await limiter.hit("client")).allowed  # the pool's one connection opens
            busy = await pool.get_connection()  # ...and the burst holds it
            try:
                fallback.append(await limiter.hit("client"))  # waits, then falls back
                assert gate.failures == 1
                await settled(gate)
            finally:
                await pool.release(busy)
            assert (await limiter.hit("client")).allowed  # on Redis again
        finally:
            await limiter.aclose()

    on_uvloop(scenario())
    assert fallback[0].allowed
    assert (gate.up, gate.outages, limiter.outages) == (True, 0, 1)


# --- down: bounded fallbacks -----------------------------------------------------------------


def test_while_redis_is_down_each_process_still_limits_at_the_configured_rate(
    proxy: FaultProxy, redis_server: RedisServer
) -> None:
    limiter = Limiter(proxy.url(), redis_server.namespace(), rates="10/minute")
    decisions: list[Decision] = []
    later: list[Decision] = []

    async def scenario() -> None:
        try:
            await limiter.op()  # one counted on Redis
            proxy.set_mode("reset")
            await asyncio.sleep(0.2)
            decisions.extend([await limiter.limiter.hit("client") for _ in range(30)])
            await wait_until(lambda: not limiter.gate.up, "down")
            later.extend([await limiter.limiter.hit("client") for _ in range(5)])
        finally:
            await limiter.aclose()

    on_uvloop(scenario())
    assert sum(d.allowed for d in decisions) == 10  # fail open, but never unlimited
    assert not any(d.allowed for d in later)
    refused = next(d for d in decisions if not d.allowed)
    assert (refused.limit, refused.retry_after > 0) == (10, True)


def test_the_outage_probe_waits_longer_than_a_request_may() -> None:
    """A busy process must not be taken for a dead Redis: the probe's own timeout is
    longer than the socket timeout requests use."""
    options = RedisOptions()
    assert options.probe_timeout_ms >= 4 * options.socket_timeout_ms
    with pytest.raises(ValueError, match="positive"):
        RedisOptions(probe_timeout_ms=0)


@pytest.mark.parametrize(
    "configure",
    [
        lambda url: RateLimitConfig(backend=parse_backend(url)),
        lambda url: CacheConfig(backend=parse_backend(url)),
        lambda url: BreakerConfig(backend=parse_backend(url)),
    ],
    ids=["limiter", "cache", "breaker"],
)
def test_a_redis_backend_without_the_redis_package_fails_when_configured(
    monkeypatch: pytest.MonkeyPatch, configure: Callable[[str], object]
) -> None:
    """Not at the first request, and not with an import error from deep inside."""
    monkeypatch.setitem(sys.modules, "redis", None)  # as if the extra were not installed
    with pytest.raises(RedisExtraMissing, match=r"pip install 'genkit-endpoints\[redis\]'") as info:
        configure("redis://user:secret@127.0.0.1:6399/0")
    assert "secret" not in str(info.value)
    configure("memory://")  # needs nothing
