# SPDX-License-Identifier: Apache-2.0
"""Provider connections: the pool settings reach the real SDKs, and calls reuse connections.

Every test builds the provider with ``choose_model`` — the kit's own wiring of the real
Gemini and OpenAI plugins — pointed at the fake provider on 127.0.0.1, which counts the
TCP connections it accepts. Each test builds its plugins inside the event loop that uses
them (one pooled client belongs to one loop), except the one about several loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from genkit import FinishReason, Genkit

from genkit_endpoints.core.errors import UpstreamTimeout
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig, ProviderConfig, ProviderPoolConfig
from genkit_endpoints.model.gemini_http import gemini_async_client_args
from genkit_endpoints.model.providers import choose_model
from tests.fakes.provider import FakeProvider, Reply

WIRES = ["gemini", "openai"]
# Every Genkit a test builds, kept until the test is over: a Gemini SDK client collected
# while its loop still runs closes its connections from a finalizer, which was seen to
# stall calls made afterwards on that loop (never the case in a service: its plugins
# live as long as the process).
_ALIVE: list[Genkit] = []


@pytest.fixture(autouse=True)
def _production_genkit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # GENKIT_ENV=dev would start a reflection server per Genkit() and write .genkit/ files.
    monkeypatch.delenv("GENKIT_ENV", raising=False)
    yield
    _ALIVE.clear()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(default=Reply(text="pooled")) as provider:
        yield provider


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest, fake: FakeProvider) -> str:
    fake.reset()
    return str(request.param)


def provider_config(
    wire: str, base_url: str, pool: ProviderPoolConfig, timeout_ms: float = 20_000
) -> ProviderConfig:
    if wire == "gemini":
        return ProviderConfig(
            gemini_api_key="test", gemini_base_url=base_url, pool=pool, timeout_ms=timeout_ms
        )
    return ProviderConfig(
        model="openai/gpt-4o-mini",
        openai_api_key="test",
        openai_base_url=f"{base_url}/v1",
        pool=pool,
        timeout_ms=timeout_ms,
    )


def genkit(
    wire: str, base_url: str, pool: ProviderPoolConfig, timeout_ms: float = 20_000
) -> Genkit:
    choice = choose_model(provider_config(wire, base_url, pool, timeout_ms))
    ai = Genkit(plugins=list(choice.plugins), model=choice.model)
    _ALIVE.append(ai)
    return ai


async def call_many(ai: Genkit, calls: int, in_flight: int) -> list[str]:
    """``calls`` generations, ``in_flight`` at a time; the text of each that succeeded."""
    gate = asyncio.Semaphore(in_flight)

    async def one(i: int) -> str:
        async with gate:
            r = await ai.generate(prompt=f"call {i}")
            return r.text if r.finish_reason == FinishReason.STOP else f"failed: {r.finish_message}"

    async with asyncio.timeout(90):
        return await asyncio.gather(*(one(i) for i in range(calls)))


@pytest.mark.timeout(180)
async def test_a_thousand_calls_64_in_flight_share_the_pool(wire: str, fake: FakeProvider) -> None:
    ai = genkit(wire, fake.base_url, ProviderPoolConfig(max_connections=8))

    texts = await call_many(ai, calls=1000, in_flight=64)

    assert texts == ["pooled"] * 1000
    assert fake.calls("generate") == 1000
    # 64 calls wait for 8 connections: never more opened, and every one reused.
    assert 1 <= fake.connections_accepted <= 8


async def test_without_keep_alive_every_call_opens_a_connection(
    wire: str, fake: FakeProvider
) -> None:
    pool = ProviderPoolConfig(max_connections=8, max_keepalive_connections=0)
    ai = genkit(wire, fake.base_url, pool)

    texts = await call_many(ai, calls=40, in_flight=8)

    assert texts == ["pooled"] * 40
    assert fake.connections_accepted >= 40


async def test_an_idle_connection_is_closed_after_the_keep_alive_expiry(
    wire: str, fake: FakeProvider
) -> None:
    brief = genkit(wire, fake.base_url, ProviderPoolConfig(keepalive_expiry=0.2))
    assert await call_many(brief, calls=1, in_flight=1) == ["pooled"]
    opened = fake.connections_accepted
    await asyncio.sleep(0.5)
    assert await call_many(brief, calls=1, in_flight=1) == ["pooled"]
    assert fake.connections_accepted == opened + 1  # the idle one had expired

    fake.reset()
    lasting = genkit(wire, fake.base_url, ProviderPoolConfig(keepalive_expiry=30))
    assert await call_many(lasting, calls=1, in_flight=1) == ["pooled"]
    opened = fake.connections_accepted
    await asyncio.sleep(0.5)
    assert await call_many(lasting, calls=1, in_flight=1) == ["pooled"]
    assert fake.connections_accepted == opened  # reused


@contextlib.contextmanager
def unanswered_listener() -> Iterator[str]:
    """A loopback address whose connection attempts stay pending.

    A listening socket that never accepts, with its accept queue filled: the kernel then
    drops further handshakes, so a client's connect waits until its own timeout.
    """
    server = socket.socket()
    fillers: list[socket.socket] = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        for _ in range(8):
            filler = socket.socket()
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except OSError:  # timed out: the queue is full
                filler.close()
                break
            fillers.append(filler)
        else:
            pytest.skip("this kernel completed every handshake; no connect can be held")
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        server.close()


async def _time_to_fail(wire: str, base_url: str, connect_timeout: float) -> float:
    ai = genkit(wire, base_url, ProviderPoolConfig(connect_timeout=connect_timeout))
    llm = ModelClient(ai, ModelCallPolicyConfig(timeout_ms=20_000, max_retries=0))
    if wire == "openai":
        # Its plugin starts without the network, and Genkit's first call costs about a
        # second of its own: an unmeasured first call takes that out of the comparison.
        # (Gemini's first network request is its model listing, early in the first call.)
        with pytest.raises(UpstreamTimeout):
            await llm.generate(prompt="Hi")
    start = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await llm.generate(prompt="Hi")
    return time.monotonic() - start


async def test_the_connect_timeout_setting_bounds_connecting(wire: str) -> None:
    with unanswered_listener() as url:
        short = await _time_to_fail(wire, url, connect_timeout=0.25)
        long = await _time_to_fail(wire, url, connect_timeout=2.0)
    # Both fail long before the 20 s model-call deadline, each at its own connect timeout
    # (plus the same start-up work): timeouts never fire early, so the long one took 2 s.
    assert long >= 2.0
    assert short <= long - 1.5, (short, long)


@pytest.mark.parametrize("wire_name", WIRES)
def test_each_event_loop_gets_its_own_pool(wire_name: str, fake: FakeProvider) -> None:
    """Genkit's plugins keep one SDK client per event loop; our pooled client follows suit.

    A pooled connection belongs to the loop that opened it: were one pool shared, the
    second loop would pick up the first loop's connection and fail.
    """
    fake.reset()
    choice = choose_model(provider_config(wire_name, fake.base_url, ProviderPoolConfig()))
    ai = Genkit(plugins=list(choice.plugins), model=choice.model)

    for _ in range(2):
        assert asyncio.run(call_many(ai, calls=3, in_flight=3)) == ["pooled"] * 3

    assert 2 <= fake.connections_accepted <= 6


def test_the_gemini_sdk_is_kept_on_httpx_when_aiohttp_is_installed() -> None:
    """Any package may bring aiohttp, and the Gemini SDK then prefers it for async calls —
    bypassing the pool, the connect timeout and the failure types the call policy knows —
    unless its client arguments name an httpx transport, which ours always do. aiohttp
    is installed in the test environment, so every Gemini test here runs that case."""
    assert importlib.util.find_spec("aiohttp") is not None
    args = gemini_async_client_args(ProviderPoolConfig())
    assert isinstance(args["transport"], httpx.AsyncBaseTransport)
