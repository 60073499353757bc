# SPDX-License-Identifier: Apache-2.0
"""The circuit breaker's behaviour, one suite over local and Redis-shared state.

The clock is the only fake: every test drives time by hand. The Redis runs are against a
real Redis the tests started, each under a fresh key namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from genkit_endpoints.core.errors import (
    ImageFetchError,
    InternalError,
    InvalidInput,
    InvalidModelOutput,
    UpstreamError,
    UpstreamTimeout,
)
from genkit_endpoints.model.upstream import error_from_genkit
from genkit_endpoints.policies.backends import parse_backend
from genkit_endpoints.policies.breaker import (
    Breaker,
    BreakerConfig,
    BreakerOpen,
    BreakerState,
    counts_as_failure,
)
from tests.support.redis_server import RedisServer
from tests.support.server import free_port

RECOVERY = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Factory = Callable[..., Breaker]


@pytest.fixture(params=["local", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Breakers on one fake clock; with ``redis`` they share a fresh namespace."""
    clock = FakeClock()
    backend, namespace = None, "unused"
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        backend, namespace = parse_backend(server.url), server.namespace()
    made: list[Breaker] = []

    def factory(**overrides: object) -> Breaker:
        cfg = {"recovery_timeout": RECOVERY, "failure_threshold": 3, **overrides}
        breaker = Breaker(
            BreakerConfig(backend=backend, namespace=namespace, **cfg),  # type: ignore[arg-type]
            clock=clock,
        )
        breaker.clock = clock  # type: ignore[attr-defined]
        made.append(breaker)
        return breaker

    yield factory
    for breaker in made:
        await breaker.aclose()


class Upstream:
    """Counts the calls the breaker let through to the (pretend) provider."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, breaker: Breaker, error: BaseException | None = None) -> None:
        async with breaker.call():
            self.calls += 1
            if error is not None:
                raise error


async def fail(breaker: Breaker, times: int, error: Exception | None = None) -> None:
    for _ in range(times):
        with pytest.raises(type(error or UpstreamError())):
            await Upstream().run(breaker, error or UpstreamError())


async def succeed(breaker: Breaker, times: int = 1) -> None:
    for _ in range(times):
        await Upstream().run(breaker)


def clock_of(breaker: Breaker) -> FakeClock:
    clock: FakeClock = breaker.clock  # type: ignore[attr-defined]
    return clock


async def test_consecutive_failures_trip_at_the_threshold(make: Factory) -> None:
    breaker = make(failure_threshold=3)
    await fail(breaker, 2)
    await succeed(breaker)  # a success resets the run
    await fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    await fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN


async def test_every_upstream_failure_kind_counts(make: Factory) -> None:
    breaker = make(failure_threshold=3)
    for error in (UpstreamError(), InvalidModelOutput(), UpstreamTimeout()):
        await fail(breaker, 1, error)
    assert breaker.state is BreakerState.OPEN


async def test_open_breaker_refuses_with_retry_after_and_no_upstream_call(make: Factory) -> None:
    breaker = make(failure_threshold=1)
    await fail(breaker, 1)
    upstream = Upstream()
    clock_of(breaker).advance(10)
    for _ in range(5):
        with pytest.raises(BreakerOpen) as info:
            await upstream.run(breaker)
    assert upstream.calls == 0
    err = info.value
    assert (err.status, err.grpc_code) == (503, "UNAVAILABLE")
    assert err.headers["retry-after"] == "20"  # seconds until half-open


async def test_adaptive_mode_trips_at_the_failure_rate(make: Factory) -> None:
    breaker = make(mode="adaptive", failure_rate=0.5, min_calls=4, window=10)
    await succeed(breaker)
    await fail(breaker, 1)
    await succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    await fail(breaker, 1)  # 2 of 4 failed
    assert breaker.state is BreakerState.OPEN


async def test_adaptive_mode_never_trips_below_min_calls(make: Factory) -> None:
    breaker = make(mode="adaptive", failure_rate=0.5, min_calls=4, window=10)
    await fail(breaker, 3)  # 100% failures, but only 3 calls
    assert breaker.state is BreakerState.CLOSED


async def test_adaptive_window_forgets_old_failures(make: Factory) -> None:
    breaker = make(mode="adaptive", failure_rate=0.5, min_calls=4, window=10)
    await fail(breaker, 3)
    clock_of(breaker).advance(11)  # the three failures slid out of the window
    await succeed(breaker, 2)
    await fail(breaker, 1)
    assert breaker.state is BreakerState.CLOSED  # 1 of 3 in the window
    await fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN  # 2 of 4


async def test_recovery_timeout_leads_to_half_open_and_a_probe_success_closes(
    make: Factory,
) -> None:
    breaker = make(failure_threshold=1)
    await fail(breaker, 1)
    clock_of(breaker).advance(RECOVERY - 0.5)
    with pytest.raises(BreakerOpen):
        await succeed(breaker)
    clock_of(breaker).advance(1)
    assert breaker.state is BreakerState.HALF_OPEN
    await succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    await succeed(breaker, 3)


async def test_a_failed_probe_reopens_for_a_full_recovery_timeout(make: Factory) -> None:
    breaker = make(failure_threshold=1)
    await fail(breaker, 1)
    clock_of(breaker).advance(RECOVERY + 1)
    await fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    clock_of(breaker).advance(RECOVERY - 1)
    with pytest.raises(BreakerOpen):
        await succeed(breaker)
    clock_of(breaker).advance(2)
    await succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


async def _hold_probe(breaker: Breaker, entered: asyncio.Event, leave: asyncio.Event) -> None:
    async with breaker.call():
        entered.set()
        await leave.wait()


async def test_half_open_admits_at_most_the_configured_probes(make: Factory) -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=2)
    await fail(breaker, 1)
    clock_of(breaker).advance(RECOVERY + 1)
    leave = asyncio.Event()
    entered = [asyncio.Event(), asyncio.Event()]
    probes = [asyncio.create_task(_hold_probe(breaker, e, leave)) for e in entered]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in entered)), 5)
    upstream = Upstream()
    with pytest.raises(BreakerOpen):
        await upstream.run(breaker)
    assert upstream.calls == 0
    leave.set()
    await asyncio.wait_for(asyncio.gather(*probes), 5)
    assert breaker.state is BreakerState.CLOSED


async def test_a_cancelled_probe_frees_its_slot_and_records_nothing(make: Factory) -> None:
    """A client hanging up mid-probe must never wedge the breaker."""
    breaker = make(failure_threshold=1, half_open_max_calls=1)
    await fail(breaker, 1)
    clock_of(breaker).advance(RECOVERY + 1)
    entered = asyncio.Event()
    probe = asyncio.create_task(_hold_probe(breaker, entered, asyncio.Event()))
    await asyncio.wait_for(entered.wait(), 5)
    with pytest.raises(BreakerOpen):
        await succeed(breaker)  # the one slot is taken
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state is BreakerState.HALF_OPEN  # neither a success nor a failure
    await succeed(breaker)  # the slot is free again
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "error",
    [
        InvalidInput(),
        ImageFetchError(),
        InternalError(),
        ValueError("bug"),
        # Raw: ModelClient types every provider failure, so these came from elsewhere
        # (a stream consumer whose client hung up, a bug), not from the provider.
        TimeoutError(),
        ConnectionResetError(),
    ],
)
async def test_client_errors_bugs_and_raw_exceptions_never_count(
    make: Factory, error: Exception
) -> None:
    breaker = make(failure_threshold=2)
    await fail(breaker, 5, error)
    assert breaker.state is BreakerState.CLOSED
    await fail(breaker, 1)
    await fail(breaker, 3, error)  # nor do they reset a run of upstream failures
    await fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN


async def test_a_client_error_in_a_probe_frees_the_slot_without_deciding(make: Factory) -> None:
    breaker = make(failure_threshold=1)
    await fail(breaker, 1)
    clock_of(breaker).advance(RECOVERY + 1)
    await fail(breaker, 1, InvalidInput())
    assert breaker.state is BreakerState.HALF_OPEN
    await succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


async def test_each_state_change_is_logged_once_and_counted(make: Factory) -> None:
    breaker = make(failure_threshold=2)
    with capture_logs() as logs:
        await fail(breaker, 2)
        for _ in range(3):
            with pytest.raises(BreakerOpen):
                await succeed(breaker)
        clock_of(breaker).advance(RECOVERY + 1)
        await succeed(breaker, 2)
    changes = [
        (e["from"], e["to"], e["reason"]) for e in logs if e["event"] == "breaker_state_changed"
    ]
    assert changes == [
        ("closed", "open", "failure_threshold"),
        ("open", "half_open", "recovery_timeout"),
        ("half_open", "closed", "probe_succeeded"),
    ]
    assert breaker.transitions == 3


def test_bad_configuration_is_refused() -> None:
    for bad in ({"failure_rate": 0}, {"failure_rate": 1.5}, {"window": 0}, {"min_calls": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            BreakerConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        BreakerConfig(mode="sometimes")  # type: ignore[arg-type]


async def test_breakers_sharing_redis_open_and_close_together(redis_server: RedisServer) -> None:
    clock = FakeClock()
    cfg = BreakerConfig(
        backend=parse_backend(redis_server.url),
        namespace=redis_server.namespace(),
        failure_threshold=3,
        recovery_timeout=RECOVERY,
        cache_ttl=0.5,
    )
    a, b = Breaker(cfg, clock=clock), Breaker(cfg, clock=clock)
    try:
        await succeed(b)  # b has a fresh view of CLOSED
        await fail(a, 2)
        await fail(b, 1)  # failures of both replicas add up
        assert b.state is BreakerState.OPEN
        clock.advance(0.6)  # a's view is at most cache_ttl old
        upstream = Upstream()
        with pytest.raises(BreakerOpen):
            await upstream.run(a)
        with pytest.raises(BreakerOpen):
            await upstream.run(b)
        assert upstream.calls == 0
        clock.advance(RECOVERY)
        await succeed(a)  # one replica's probe closes it for all
        clock.advance(0.6)
        await succeed(b)  # b reads the shared state again: closed, not half-open
        assert b.state is BreakerState.CLOSED
        assert (a.transitions, b.transitions) == (2, 1)  # each logs what it changed
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_outage_falls_back_to_the_local_breaker_and_logs_once() -> None:
    clock = FakeClock()
    dead = parse_backend(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    breaker = Breaker(
        BreakerConfig(backend=dead, failure_threshold=2, outage_log_interval=30), clock=clock
    )
    try:
        with capture_logs() as logs:
            await succeed(breaker)
            await fail(breaker, 2)
            assert breaker.state is BreakerState.OPEN  # decided locally
            with pytest.raises(BreakerOpen):
                await succeed(breaker)
            clock.advance(5)  # past outage_retry: Redis is tried (and fails) again
            with pytest.raises(BreakerOpen):
                await succeed(breaker)
        outages = [e for e in logs if e["event"] == "breaker_backend_unavailable"]
        assert len(outages) == 1
        assert outages[0]["fallback"] == "local"
    finally:
        await breaker.aclose()


async def test_cached_answers_are_served_while_the_breaker_is_open() -> None:
    """The cache sits in front of the breaker: an open breaker refuses new model calls, but
    answers already cached are still served."""
    from genkit import Genkit

    from endpoints_hello.app import PROMPTS_DIR
    from endpoints_hello.flows import build_routes
    from genkit_endpoints.core import routes
    from genkit_endpoints.model.client import ModelClient
    from genkit_endpoints.model.config import ModelCallPolicyConfig
    from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
    from genkit_endpoints.policies.cache import CacheConfig, FlowCache
    from tests.support.image_server import offline_fetcher

    model = OfflineModel()
    ai = Genkit(plugins=[model], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    breaker = Breaker(BreakerConfig(failure_threshold=1, recovery_timeout=60))
    table = build_routes(ai, ModelClient(ai, ModelCallPolicyConfig(), breaker), offline_fetcher())
    cache = FlowCache(CacheConfig())
    route = table.by_name["translate_text"]
    cached = routes.parse_input(route, {"text": "Good night.", "target_language": "Italian"})
    first = await routes.invoke(route, cached, cache)

    with pytest.raises(UpstreamError):
        async with breaker.call():
            raise UpstreamError()  # the provider failing for some other request
    assert breaker.state is BreakerState.OPEN

    calls = model.completed_calls
    assert await routes.invoke(route, cached, cache) == first
    fresh = routes.parse_input(route, {"text": "Good morning.", "target_language": "Italian"})
    with pytest.raises(BreakerOpen):
        await routes.invoke(route, fresh, cache)
    assert model.completed_calls == calls  # neither request reached the model


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        ("UNAVAILABLE", True),
        ("RESOURCE_EXHAUSTED", True),
        ("INTERNAL", True),
        ("INVALID_ARGUMENT", False),
        ("PERMISSION_DENIED", False),
        ("UNAUTHENTICATED", False),
    ],
)
def test_only_provider_outages_count_not_requests_it_refused(status: str, counts: bool) -> None:
    """A provider 5xx/429 counts; a 4xx refusing this one request does not."""
    assert counts_as_failure(error_from_genkit(status, "provider said no")) is counts


class Topic(BaseModel):
    topic: str = "cats"


class Said(BaseModel):
    text: str


async def test_a_bug_in_one_flow_never_opens_the_breaker_for_the_others() -> None:
    """A flow calling generate with a mistyped argument used to answer 502 and, after the
    threshold, open the breaker: every flow then answered 503, blaming the provider."""
    from genkit import Genkit

    from genkit_endpoints.core import routes
    from genkit_endpoints.core.routes import FlowRoute, RouteTable
    from genkit_endpoints.model.client import ModelClient
    from genkit_endpoints.model.config import ModelCallPolicyConfig
    from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel

    model = OfflineModel()
    ai = Genkit(plugins=[model], model=OFFLINE_MODEL)
    breaker = Breaker(BreakerConfig(failure_threshold=2, recovery_timeout=60))
    llm = ModelClient(ai, ModelCallPolicyConfig(), breaker)

    @ai.flow()
    async def broken(data: Topic) -> Said:
        response = await llm.generate(prompt=f"About {data.topic}", promt_typo=1)
        return Said(text=response.text)

    @ai.flow()
    async def working(data: Topic) -> Said:
        response = await llm.generate(prompt=f"About {data.topic}")
        return Said(text=response.text)

    table = RouteTable.build(
        [FlowRoute(broken, "/broken", Topic, Said), FlowRoute(working, "/working", Topic, Said)]
    )
    with capture_logs() as logs:
        for _ in range(5):
            with pytest.raises(InternalError) as info:
                await routes.invoke(table.by_path["/broken"], Topic())
            assert info.value.status == 500
            assert info.value.detail == InternalError.default_detail
    assert breaker.state is BreakerState.CLOSED
    answer = await routes.invoke(table.by_path["/working"], Topic())
    assert answer["text"]
    logged = [e for e in logs if e["event"] == "flow_failed"]
    assert len(logged) == 5
    assert all(isinstance(e["exc_info"], TypeError) for e in logged)
    assert logged[0]["flow"] == "broken"
