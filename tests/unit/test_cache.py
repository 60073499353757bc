# SPDX-License-Identifier: Apache-2.0
"""The flow cache: one behaviour suite over memory:// and a real Redis.

Flows are real Genkit flows defined here that count their runs (the boundary: a model
call); requests go through ``routes.invoke`` / ``routes.stream`` and the SSE framing, as
every transport does. Redis "processes" are independent ``FlowCache`` instances, each
with its own client, sharing one Redis and one fresh key namespace.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from genkit import ActionRunContext, Genkit
from pydantic import BaseModel
from structlog.testing import capture_logs

from genkit_endpoints.core import routes
from genkit_endpoints.core.context import principal_var
from genkit_endpoints.core.errors import UpstreamError
from genkit_endpoints.core.response_cache import no_cache
from genkit_endpoints.core.routes import FlowRoute
from genkit_endpoints.http import sse
from genkit_endpoints.policies.backends import parse_backend
from genkit_endpoints.policies.cache import CacheConfig, FlowCache, MemoryStore
from genkit_endpoints.security.keys import Principal
from tests.support.redis_server import RedisServer
from tests.support.server import free_port


class In(BaseModel):
    word: str = "hi"


class Out(BaseModel):
    echo: str
    run: int


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flows:
    """Counting flows; ``gate`` holds every run until set, ``fail_next`` fails runs."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = 0
        ai = Genkit()

        @ai.flow()
        async def echo(data: In) -> Out:
            self.calls += 1
            run = self.calls
            await self.gate.wait()
            if self.fail_next:
                self.fail_next -= 1
                raise UpstreamError()
            return Out(echo=data.word, run=run)

        @ai.flow(chunk_type=str)
        async def talk(data: In, ctx: ActionRunContext) -> str:
            self.calls += 1
            run = self.calls
            for part in ("a", "b", data.word):
                ctx.send_chunk(f"{part}{run}")
                await asyncio.sleep(0)
            await self.gate.wait()
            if self.fail_next:
                self.fail_next -= 1
                raise UpstreamError()
            return f"done{run}"

        self.unary = FlowRoute(echo, "/echo", In, Out, cacheable=True, version="v1")
        self.stream = FlowRoute(talk, "/talk", In, stream_key="text", cacheable=True, version="v1")


Factory = Callable[..., FlowCache]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_cache(
    request: pytest.FixtureRequest, backend: str, clock: Clock
) -> AsyncIterator[Factory]:
    """Caches on one backend; with Redis all caches of a test share one fresh namespace
    (several caches stand in for several processes)."""
    made: list[FlowCache] = []
    url: str | None = None
    namespace = "t"
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url, namespace = server.url, server.namespace()

    def make(**overrides: Any) -> FlowCache:
        if url is not None:
            overrides.setdefault("backend", parse_backend(url))
        overrides.setdefault("namespace", namespace)
        cache = FlowCache(CacheConfig(**overrides), clock=clock)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.aclose()


@pytest.fixture
def flows() -> Flows:
    return Flows()


async def settle() -> None:
    """Let every ready task run (and Redis pollers poll) before the gate opens."""
    for _ in range(20):
        await asyncio.sleep(0.01)


async def frames(route: FlowRoute, cache: FlowCache, word: str = "hi", **kw: Any) -> bytes:
    events = routes.stream(route, In(word=word), None, cache, **kw)
    out = [f async for f in sse.route_frames(route, events, instance="/talk", request_id=None)]
    return b"".join(out)


# --- hits, misses, expiry -------------------------------------------------------------


async def test_identical_request_is_answered_from_the_cache(
    make_cache: Factory, flows: Flows
) -> None:
    cache = make_cache()
    first = await routes.invoke(flows.unary, In(word="x"), cache)
    second = await routes.invoke(flows.unary, In(word="x"), cache)
    assert first == second == {"echo": "x", "run": 1}
    assert flows.calls == 1
    other = await routes.invoke(flows.unary, In(word="y"), cache)
    assert other == {"echo": "y", "run": 2}


async def test_entries_expire_after_the_ttl(
    make_cache: Factory, flows: Flows, backend: str, clock: Clock
) -> None:
    cache = make_cache(ttl=0.3)
    await routes.invoke(flows.unary, In(), cache)
    if backend == "memory":
        clock.now += 0.31
    else:
        await asyncio.sleep(0.6)
    again = await routes.invoke(flows.unary, In(), cache)
    assert again["run"] == 2
    assert flows.calls == 2


async def test_a_changed_fingerprint_misses(make_cache: Factory, flows: Flows) -> None:
    cache = make_cache()
    await routes.invoke(flows.unary, In(), cache)
    new_prompt = dataclasses.replace(flows.unary, version="v2")
    assert (await routes.invoke(new_prompt, In(), cache))["run"] == 2
    assert (await routes.invoke(flows.unary, In(), cache))["run"] == 1


async def test_no_cache_skips_the_read_but_stores_the_fresh_answer(
    make_cache: Factory, flows: Flows
) -> None:
    cache = make_cache()
    await routes.invoke(flows.unary, In(), cache)
    fresh = await routes.invoke(flows.unary, In(), cache, no_cache=True)
    assert fresh["run"] == 2
    assert (await routes.invoke(flows.unary, In(), cache))["run"] == 2
    assert flows.calls == 2


def test_only_the_no_cache_directive_skips_the_read() -> None:
    assert no_cache("no-cache")
    assert no_cache("max-age=0, No-Cache")
    assert not no_cache("no-store")
    assert not no_cache(None)
    assert not no_cache("max-age=60")


async def test_non_cacheable_routes_always_run(make_cache: Factory, flows: Flows) -> None:
    cache = make_cache()
    plain = dataclasses.replace(flows.unary, cacheable=False)
    await routes.invoke(plain, In(), cache)
    await routes.invoke(plain, In(), cache)
    assert flows.calls == 2


async def test_principal_scope_keeps_callers_apart(make_cache: Factory, flows: Flows) -> None:
    cache = make_cache(scope="principal")

    async def as_(name: str) -> int:
        token = principal_var.set(Principal(name=name, method="api_key"))
        try:
            return int((await routes.invoke(flows.unary, In(), cache))["run"])
        finally:
            principal_var.reset(token)

    assert await as_("alice") == 1
    assert await as_("bob") == 2
    assert await as_("alice") == 1
    assert flows.calls == 2


async def test_global_scope_shares_answers_between_callers(
    make_cache: Factory, flows: Flows
) -> None:
    cache = make_cache()
    for name in ("alice", "bob"):
        token = principal_var.set(Principal(name=name, method="api_key"))
        try:
            await routes.invoke(flows.unary, In(), cache)
        finally:
            principal_var.reset(token)
    assert flows.calls == 1


# --- memory bounds --------------------------------------------------------------------


async def test_memory_is_bounded_by_entry_count_least_recently_used_first(
    flows: Flows, clock: Clock
) -> None:
    cache = FlowCache(CacheConfig(max_entries=2), clock=clock)
    for word in ("a", "b", "a", "c"):  # a is used again, so b is the oldest
        await routes.invoke(flows.unary, In(word=word), cache)
    assert flows.calls == 3
    assert (await routes.invoke(flows.unary, In(word="a"), cache))["run"] == 1
    assert (await routes.invoke(flows.unary, In(word="b"), cache))["run"] == 4


async def test_sweep_drops_expired_entries_and_no_side_table_grows(
    flows: Flows, clock: Clock
) -> None:
    cache = FlowCache(CacheConfig(ttl=10, max_entries=1000), clock=clock)
    store = cache.store
    assert isinstance(store, MemoryStore)
    await asyncio.gather(*(routes.invoke(flows.unary, In(word=str(i)), cache) for i in range(50)))
    assert len(store) == 50
    assert cache.inflight == 0
    clock.now += 11  # all expired; the next write sweeps them
    await routes.invoke(flows.unary, In(word="new"), cache)
    assert len(store) == 1
    assert cache.inflight == 0


# --- single-flight --------------------------------------------------------------------


async def test_concurrent_identical_misses_make_one_flow_call(
    make_cache: Factory, flows: Flows, backend: str
) -> None:
    # Redis: three caches stand in for three processes — one call for the cluster.
    caches = [make_cache() for _ in range(3 if backend == "redis" else 1)]
    flows.gate.clear()
    calls = [
        asyncio.ensure_future(routes.invoke(flows.unary, In(), caches[i % len(caches)]))
        for i in range(200)
    ]
    await settle()
    flows.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*calls), 20)
    assert flows.calls == 1
    assert all(r == {"echo": "hi", "run": 1} for r in results)
    assert all(c.inflight == 0 for c in caches)


async def test_a_failure_is_shared_with_waiters_and_never_cached(
    make_cache: Factory, flows: Flows, backend: str
) -> None:
    caches = [make_cache() for _ in range(3 if backend == "redis" else 1)]
    flows.gate.clear()
    flows.fail_next = 1
    calls = [
        asyncio.ensure_future(routes.invoke(flows.unary, In(), caches[i % len(caches)]))
        for i in range(30)
    ]
    await settle()
    flows.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 20)
    assert flows.calls == 1
    assert all(isinstance(r, UpstreamError) for r in results), results
    # The next request retries (once) and succeeds.
    assert (await routes.invoke(flows.unary, In(), caches[0]))["run"] == 2
    assert (await routes.invoke(flows.unary, In(), caches[-1]))["run"] == 2
    assert flows.calls == 2


async def test_a_waiter_takes_over_when_the_leader_goes_away(
    make_cache: Factory, flows: Flows
) -> None:
    cache = make_cache()
    flows.gate.clear()
    leader = asyncio.ensure_future(routes.invoke(flows.unary, In(), cache))
    await settle()
    waiter = asyncio.ensure_future(routes.invoke(flows.unary, In(), cache))
    await settle()
    leader.cancel()  # the leader's client left: its waiters must not hang or fail
    await settle()
    flows.gate.set()
    assert (await asyncio.wait_for(waiter, 10))["run"] == 2
    assert cache.inflight == 0


async def test_an_expired_lease_of_a_dead_process_is_taken_over(
    redis_server: RedisServer, flows: Flows
) -> None:
    ns = redis_server.namespace()
    backend = parse_backend(redis_server.url)
    dead = FlowCache(CacheConfig(backend=backend, namespace=ns, lock_timeout=0.4))
    alive = FlowCache(CacheConfig(backend=backend, namespace=ns, lock_timeout=0.4))
    try:
        key = dead.key(flows.unary.name, flows.unary.version, In())
        claimed = await dead.begin(key)  # a leader that then dies: never settles
        assert not isinstance(claimed, bytes)
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await asyncio.wait_for(routes.invoke(flows.unary, In(), alive), 10)
        assert result["run"] == 1
        assert loop.time() - started >= 0.3  # it waited for the lease, then took over
    finally:
        await dead.aclose()
        await alive.aclose()


async def test_redis_outage_bypasses_the_cache_without_errors(flows: Flows) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    cache = FlowCache(CacheConfig(backend=parse_backend(closed)))
    try:
        with capture_logs() as logs:
            first = await routes.invoke(flows.unary, In(), cache)
            second = await routes.invoke(flows.unary, In(), cache)
            streamed = await frames(flows.stream, cache)
    finally:
        await cache.aclose()
    assert (first["run"], second["run"]) == (1, 2)
    assert b'"done":true' in streamed
    assert [e["event"] for e in logs].count("cache_bypassed") == 1


# --- streams --------------------------------------------------------------------------


async def test_a_completed_stream_is_replayed_as_identical_frames(
    make_cache: Factory, flows: Flows
) -> None:
    cache = make_cache()
    first = await frames(flows.stream, cache)
    second = await frames(flows.stream, cache)
    assert first == second
    assert first.count(b"data: ") == 4  # three chunks and the final frame
    assert flows.calls == 1


async def test_concurrent_identical_streams_share_one_run(
    make_cache: Factory, flows: Flows, backend: str
) -> None:
    caches = [make_cache() for _ in range(3 if backend == "redis" else 1)]
    flows.gate.clear()
    runs = [asyncio.ensure_future(frames(flows.stream, caches[i % len(caches)])) for i in range(12)]
    await settle()
    flows.gate.set()
    out = await asyncio.wait_for(asyncio.gather(*runs), 20)
    assert flows.calls == 1
    assert len(set(out)) == 1
    assert b"a1" in out[0]


async def test_a_failed_stream_is_not_stored(make_cache: Factory, flows: Flows) -> None:
    cache = make_cache()
    flows.fail_next = 1
    failed = await frames(flows.stream, cache)
    assert b"event: error" in failed
    again = await frames(flows.stream, cache)
    assert b"event: error" not in again
    assert b"done2" in again
    assert flows.calls == 2


async def test_a_stream_cut_by_its_client_is_not_stored(make_cache: Factory, flows: Flows) -> None:
    cache = make_cache()
    events = routes.stream(flows.stream, In(), None, cache)
    first = await anext(aiter(events))
    assert isinstance(first, routes.Chunk)
    await events.aclose()  # type: ignore[attr-defined]
    await settle()
    complete = await frames(flows.stream, cache)
    assert b"done2" in complete
    assert flows.calls == 2


async def test_unary_and_stream_entries_do_not_mix(make_cache: Factory, flows: Flows) -> None:
    """The callable protocol can stream a unary route: it gets a stream entry of its own."""
    cache = make_cache()
    await routes.invoke(flows.unary, In(), cache)
    events = [e async for e in routes.stream(flows.unary, In(), None, cache)]
    assert isinstance(events[-1], routes.Final)
    assert flows.calls == 2


async def test_cache_namespace_setting_prefixes_every_redis_key(
    redis_server: RedisServer, flows: Flows
) -> None:
    """CACHE_NAMESPACE keeps services that share one Redis apart (README settings)."""
    import redis.asyncio as aioredis

    from genkit_endpoints import Settings

    namespace = redis_server.namespace()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url=redis_server.url, cache_namespace=namespace
    )
    cfg = settings.cache_config()
    assert cfg is not None
    cache = FlowCache(cfg)
    try:
        await routes.invoke(flows.unary, In(word="ns"), cache)
    finally:
        await cache.aclose()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        keys = [k async for k in client.scan_iter(f"{namespace}:cache:*")]
    finally:
        await client.aclose()
    assert keys, "nothing was stored under the configured namespace"
