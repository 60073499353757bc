# SPDX-License-Identifier: Apache-2.0
"""The rate limiter's behaviour, one suite over both backends (memory, a real Redis).

Exactness is the point: a limit of N admits exactly N of 2N concurrent requests, on
every strategy. Outages use real sockets — a closed port, a listener that never
answers, a Redis stopped and started again — never a fake client.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from genkit_endpoints import Settings
from genkit_endpoints.policies.backends import parse_backend
from genkit_endpoints.policies.ratelimit import (
    Decision,
    RateLimitConfig,
    RateLimiter,
    RateLimitUnavailable,
    StrategyName,
    parse_rates,
)
from tests.support.redis_server import RedisServer
from tests.support.server import free_port

MakeLimiter = Callable[..., Awaitable[RateLimiter]]
N = 10
STRATEGIES: tuple[StrategyName, ...] = ("moving-window", "sliding-window-counter", "fixed-window")


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[MakeLimiter]:
    """Limiters on the parametrised backend, each under a fresh Redis namespace."""
    url = "memory://" if request.param == "memory" else redis_server.url
    made: list[RateLimiter] = []

    async def make(rates: str, **kwargs: Any) -> RateLimiter:
        cfg = RateLimitConfig(
            rates=rates, backend=parse_backend(url), namespace=redis_server.namespace(), **kwargs
        )
        limiter = RateLimiter(cfg)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


async def hits(limiter: RateLimiter, key: str, count: int) -> list[Decision]:
    return list(await asyncio.gather(*(limiter.hit(key) for _ in range(count))))


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_concurrent_hits_admit_exactly_the_limit(
    make_limiter: MakeLimiter, strategy: StrategyName
) -> None:
    # Per hour, so the sliding-window counter's clock-aligned windows never turn mid-test.
    limiter = await make_limiter(f"{N}/hour", strategy=strategy)
    for round_ in range(20):
        decisions = await hits(limiter, f"client-{round_}", 2 * N)
        assert sum(d.allowed for d in decisions) == N, f"round {round_}"
        refused = [d for d in decisions if not d.allowed]
        assert all(d.retry_after >= 1 and d.limit == N and d.remaining == 0 for d in refused)


async def test_remaining_counts_down_then_refusal_says_when_to_retry(
    make_limiter: MakeLimiter,
) -> None:
    limiter = await make_limiter("3/minute")
    seen = [await limiter.hit("k") for _ in range(4)]
    assert [d.allowed for d in seen] == [True, True, True, False]
    assert [d.remaining for d in seen] == [2, 1, 0, 0]
    assert all(d.limit == 3 for d in seen)
    assert all(0 < d.reset_after <= 60 for d in seen)
    assert 55 <= seen[3].retry_after <= 60  # the first hit frees its slot a minute later
    assert seen[0].retry_after == 0


async def test_keys_are_counted_apart(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter("2/minute")
    assert [d.allowed for d in await hits(limiter, "a", 3)].count(True) == 2
    assert [d.allowed for d in await hits(limiter, "b", 3)].count(True) == 2


async def test_window_reset_admits_the_full_limit_again(make_limiter: MakeLimiter) -> None:
    limiter = await make_limiter("3/second")
    first = [await limiter.hit("k") for _ in range(4)]
    assert [d.allowed for d in first] == [True, True, True, False]
    assert first[3].retry_after == 1
    assert first[3].reset_after <= 1.0
    await asyncio.sleep(first[3].reset_after + 0.1)
    again = await hits(limiter, "k", 6)
    assert sum(d.allowed for d in again) == 3


async def test_refusal_by_one_rate_spends_nothing_from_the_others(
    make_limiter: MakeLimiter,
) -> None:
    limiter = await make_limiter("2/second;4/minute")
    first = await limiter.hit("k")
    assert (first.limit, first.remaining) == (2, 1)  # the tightest rate speaks
    assert (await limiter.hit("k")).allowed
    for _ in range(5):  # refused by the per-second rate: the minute budget stays at 2 left
        refused = await limiter.hit("k")
        assert not refused.allowed
        assert refused.limit == 2
    await asyncio.sleep(refused.reset_after + 0.1)
    later = [await limiter.hit("k") for _ in range(3)]
    assert [d.allowed for d in later] == [True, True, False]
    assert later[1].remaining == 0
    assert later[2].limit == 4  # now the minute rate refuses, for most of a minute
    assert later[2].retry_after > 50


@pytest.mark.parametrize(
    ("rates", "named"),
    [
        ("0/minute", "'0/minute'"),
        ("10/second;0/minute", "'0/minute'"),
        ("-1/minute", "'-1/minute'"),
        ("ten/minute", "'ten/minute'"),
        ("10/fortnight", "'10/fortnight'"),
        ("10/minute;;5/second", "empty rate"),
        ("  ", "empty"),
    ],
)
def test_bad_rates_are_refused_with_the_bad_part_named(rates: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as info:
        RateLimitConfig(rates=rates)
    assert "\n" not in str(info.value)


def test_good_rates_parse_in_order() -> None:
    items = parse_rates("10/second; 100/minute")
    assert [(i.amount, i.get_expiry()) for i in items] == [(10, 1), (100, 60)]


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="token-bucket"):
        RateLimitConfig(strategy="token-bucket")  # type: ignore[arg-type]


# Outages


def closed_port_config(**kwargs: Any) -> RateLimitConfig:
    return RateLimitConfig(
        rates="1/minute", backend=parse_backend(f"redis://127.0.0.1:{free_port()}/0"), **kwargs
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_outage_fails_open_counting_in_the_process_and_logs_once_per_interval() -> None:
    """Failing open is bounded: without its store, the limiter counts in the process, so
    a dead Redis never means unlimited requests."""
    clock = FakeClock()
    limiter = RateLimiter(closed_port_config(outage_log_interval=60), clock=clock)
    try:
        with structlog.testing.capture_logs() as logs:
            decisions = [await limiter.hit("k") for _ in range(5)]
            clock.now += 61
            await limiter.hit("k")
    finally:
        await limiter.aclose()
    assert [d.allowed for d in decisions] == [True, False, False, False, False]  # 1/minute
    assert all(d.limit == 1 for d in decisions)
    assert limiter.outages == 6
    events = [e for e in logs if e["event"] == "rate_limit_storage_unavailable"]
    assert len(events) == 2
    assert events[0]["backend"].startswith("redis://127.0.0.1:")
    assert events[1]["outages"] == 6


async def test_outage_fails_closed_with_503_and_retry_after() -> None:
    limiter = RateLimiter(closed_port_config(fail_open=False))
    try:
        with pytest.raises(RateLimitUnavailable) as info:
            await limiter.hit("k")
    finally:
        await limiter.aclose()
    assert info.value.status == 503
    assert info.value.headers == {"retry-after": "1"}
    assert limiter.outages == 1


async def test_outage_log_never_shows_the_password() -> None:
    url = f"redis://user:s3cret-pass@127.0.0.1:{free_port()}/0"
    limiter = RateLimiter(RateLimitConfig(backend=parse_backend(url)))
    try:
        with structlog.testing.capture_logs() as logs:
            await limiter.hit("k")
    finally:
        await limiter.aclose()
    assert logs
    assert "s3cret-pass" not in repr(logs)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


async def test_a_hung_redis_costs_one_short_timeout_not_client_retries(
    silent_listener: int,
) -> None:
    cfg = RateLimitConfig(backend=parse_backend(f"redis://127.0.0.1:{silent_listener}/0"))
    limiter = RateLimiter(cfg)
    try:
        started = time.monotonic()
        decision = await limiter.hit("k")
        elapsed = time.monotonic() - started
    finally:
        await limiter.aclose()
    assert decision.allowed  # decided in the process: 60/minute by default
    assert decision.limit == 60
    # 250 ms socket timeout, one attempt. redis-py's default (10 retries) takes > 2.5 s.
    assert elapsed < 1.5


@pytest.mark.parametrize("fail_open", [True, False])
async def test_limiter_recovers_when_redis_comes_back(
    own_redis: RedisServer, fail_open: bool
) -> None:
    cfg = RateLimitConfig(
        rates="5/minute", backend=parse_backend(own_redis.url), fail_open=fail_open
    )
    limiter = RateLimiter(cfg)
    try:
        assert (await limiter.hit("k")).remaining == 4
        own_redis.stop()
        if fail_open:
            assert (await limiter.hit("k")).remaining == 4  # counted in the process
        else:
            with pytest.raises(RateLimitUnavailable):
                await limiter.hit("k")
        assert limiter.outages == 1
        gate = limiter.gate
        assert gate is not None
        # The failed call makes the gate probe Redis; the failed probe takes the limiter
        # off it, so later requests skip the dead Redis at no cost.
        await until(lambda: not gate.up, "the gate never noticed the outage")
        own_redis.restart_empty()  # no data, no scripts loaded: a real restart
        # The gate's probe, repeated every second, notices it is back.
        await until(lambda: gate.up, "the limiter never went back to Redis")
        back = await limiter.hit("k")
    finally:
        await limiter.aclose()
    assert back.allowed
    assert (back.limit, back.remaining) == (5, 4)
    assert limiter.outages == 1


async def until(check: Callable[[], bool], message: str, limit: float = 5) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, message
        await asyncio.sleep(0.05)


# The app's settings view


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "RATE_LIMIT_REDIS_URL", "RATE_LIMIT_ENABLED", "RATE_LIMIT_DEFAULT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_env")
def test_settings_choose_the_rate_limit_store_by_precedence() -> None:
    def backend(**kwargs: Any) -> str:
        cfg = Settings(_env_file=None, **kwargs).rate_limit_config()  # type: ignore[call-arg]
        assert cfg is not None
        return cfg.backend.redacted

    assert backend() == "memory://"
    assert backend(redis_url="redis://a:6379/0") == "redis://a:6379/0"
    both = {"redis_url": "redis://a:6379/0", "rate_limit_redis_url": "redis://:pw@b:6380/1"}
    assert backend(**both) == "redis://:***@b:6380/1"
    off = Settings(_env_file=None, rate_limit_enabled=False)  # type: ignore[call-arg]
    assert off.rate_limit_config() is None


@pytest.mark.usefixtures("clean_env")
def test_settings_refuse_a_rate_that_admits_nothing() -> None:
    with pytest.raises(ValidationError, match="'0/minute' admits nothing"):
        Settings(_env_file=None, rate_limit_default="0/minute")  # type: ignore[call-arg]
