# SPDX-License-Identifier: Apache-2.0
"""The fake provider, proven through the real Gemini and OpenAI Genkit plugins.

Also the reference for both wire formats as Genkit 0.12 uses them: each test pins what the
plugin sent (the recorded request) and how the fake's reply or fault surfaces in Genkit --
which, in 0.12, is a `finish_reason == "failed"` response rather than an exception.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from genkit import Genkit, GenkitError, ModelResponse, RuntimeErrorReason
from genkit.middleware import BaseMiddleware, GenerateMiddlewareContext, ModelHookParams
from genkit_google_genai import GoogleAI
from genkit_openai import OpenAI
from google.genai import errors as genai_errors
from pydantic import BaseModel

from genkit_endpoints.core.errors import UpstreamError, UpstreamTimeout
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig, ProviderPoolConfig
from genkit_endpoints.model.gemini_http import gemini_async_client_args
from genkit_endpoints.policies.breaker import Breaker, BreakerConfig, BreakerState
from tests.fakes.provider import (
    FakeProvider,
    Fault,
    RecordedRequest,
    Reply,
    ToolCall,
    iter_sse_data,
)


@dataclass(frozen=True)
class PluginCase:
    """One real plugin pointed at the fake, plus how its transport failures look."""

    wire: str
    model: str
    timeout_cause: type[BaseException]
    drop_cause: type[BaseException]

    def genkit(self, fake: FakeProvider, *, timeout: float = 5.0) -> Genkit:
        if self.wire == "gemini":
            # http_options.timeout is in milliseconds; no retry_options means the SDK never
            # retries, so every scripted step is consumed exactly once. The client
            # arguments are the kit's: with aiohttp importable (as it is here) the SDK
            # would otherwise send through aiohttp, not httpx.
            plugin: Any = GoogleAI(
                api_key="test",
                base_url=fake.gemini_base_url,
                http_options={
                    "timeout": int(timeout * 1000),
                    "async_client_args": gemini_async_client_args(ProviderPoolConfig()),
                },
            )
        else:
            # The SDK defaults are 2 retries and a 600 s timeout: both would hide faults.
            plugin = OpenAI(
                api_key="test", base_url=fake.openai_base_url, max_retries=0, timeout=timeout
            )
        return Genkit(plugins=[plugin], model=self.model)


GEMINI = PluginCase(
    "gemini", "googleai/gemini-2.5-flash", httpx.ReadTimeout, httpx.RemoteProtocolError
)
# genkit_openai resolves any `openai/<name>` as a chat model (no listing needed).
OPENAI = PluginCase(
    "openai", "openai/gpt-4o-mini", openai.APITimeoutError, openai.APIConnectionError
)


@pytest.fixture(autouse=True)
def _production_genkit(monkeypatch: pytest.MonkeyPatch) -> None:
    # GENKIT_ENV=dev would start a reflection server per Genkit() and write .genkit/ files.
    monkeypatch.delenv("GENKIT_ENV", raising=False)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(params=[GEMINI, OPENAI], ids=lambda case: case.wire)
def case(request: pytest.FixtureRequest) -> PluginCase:
    return request.param  # type: ignore[no-any-return]


def capture_model_errors(sink: list[GenkitError]) -> BaseMiddleware[Any]:
    """Middleware that records the plugin's own error before Genkit boxes it into `r.error`."""

    class CaptureModelErrors(BaseMiddleware[Any]):
        async def wrap_model(
            self,
            params: ModelHookParams,
            ctx: GenerateMiddlewareContext,
            next_fn: Callable[
                [ModelHookParams, GenerateMiddlewareContext], Awaitable[ModelResponse]
            ],
        ) -> ModelResponse:
            try:
                return await next_fn(params, ctx)
            except GenkitError as exc:
                sink.append(exc)
                raise

    return CaptureModelErrors()


def generations(fake: FakeProvider) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.kind == "generate"]


class Weather(BaseModel):
    city: str
    temp_c: float


class TimeQuery(BaseModel):
    tz: str


# -- replies through the real plugins ---------------------------------------------------------


async def test_unary_text_reply_reaches_generate(case: PluginCase, fake: FakeProvider) -> None:
    """Also the unary request shape: where each plugin puts key, model and system prompt."""
    fake.script(Reply(text="Hi there, tester."))
    ai = case.genkit(fake)

    r = await ai.generate(prompt="Say hi", system="Be brief.")

    assert r.text == "Hi there, tester."
    assert r.finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.output_tokens == 3
    [sent] = generations(fake)
    assert (sent.method, sent.wire, sent.streaming, sent.json_mode) == (
        "POST",
        case.wire,
        False,
        False,
    )
    assert sent.model == case.model.split("/", 1)[1]
    if case.wire == "gemini":
        assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
        assert sent.headers["x-goog-api-key"] == "test"
        assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Say hi"}]}]
        assert sent.body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    else:
        assert sent.path == "/v1/chat/completions"
        assert sent.headers["authorization"] == "Bearer test"
        assert sent.body["model"] == "gpt-4o-mini"
        assert sent.body["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hi"},
        ]
        assert "stream" not in sent.body


async def test_streaming_text_arrives_in_several_chunks(
    case: PluginCase, fake: FakeProvider
) -> None:
    fake.script(Reply(text="one two three four five"))
    ai = case.genkit(fake)

    sr = ai.generate_stream(prompt="Count to five")
    chunks = [chunk.text async for chunk in sr.stream]
    r = await sr.response

    assert chunks == ["one ", "two ", "three ", "four ", "five"]
    assert r.text == "one two three four five"
    assert r.finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.output_tokens == 5
    [sent] = generations(fake)
    assert sent.streaming
    if case.wire == "gemini":
        assert sent.path.endswith(":streamGenerateContent")
        assert sent.query == {"alt": "sse"}
    else:
        assert sent.body["stream"] is True
        assert sent.body["stream_options"] == {"include_usage": True}


async def test_chunk_delay_and_slow_first_chunk_slow_the_stream_down(
    case: PluginCase, fake: FakeProvider
) -> None:
    fake.script(Fault.slow_first_chunk(0.4, Reply(text="a b c", chunk_delay=0.2)))
    ai = case.genkit(fake)

    started = time.monotonic()
    sr = ai.generate_stream(prompt="Slowly")
    chunks = [chunk.text async for chunk in sr.stream]
    r = await sr.response

    assert time.monotonic() - started >= 0.75  # 0.4 + 2 x 0.2, minus timer slack
    assert chunks == ["a ", "b ", "c"]
    assert r.finish_reason == "stop"


async def test_structured_output_is_parsed_from_scripted_json(
    case: PluginCase, fake: FakeProvider
) -> None:
    fake.script(Reply(text='{"city": "Oslo", "temp_c": 3.5}'))
    ai = case.genkit(fake)

    r = await ai.generate(prompt="Weather in Oslo?", output_schema=Weather)

    assert r.output == Weather(city="Oslo", temp_c=3.5)
    [sent] = generations(fake)
    assert sent.json_mode
    if case.wire == "gemini":
        config = sent.body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert set(config["responseSchema"]["properties"]) == {"city", "temp_c"}
    else:
        fmt = sent.body["response_format"]
        assert fmt["type"] == "json_schema"
        assert fmt["json_schema"]["name"] == "Weather"
        assert fmt["json_schema"]["strict"] is True


async def test_invalid_json_surfaces_as_invalid_output(
    case: PluginCase, fake: FakeProvider
) -> None:
    """Bad JSON is reported on `r.error` -- but with finish_reason "stop", not "failed"."""
    fake.script(Reply(text="not json {"))
    ai = case.genkit(fake)

    r = await ai.generate(prompt="Weather?", output_schema=Weather)

    assert r.error is not None
    assert r.error.reason == RuntimeErrorReason.INVALID_OUTPUT
    # Genkit 0.12 keeps the model's own finish reason here: check r.error, not finish_reason.
    assert r.finish_reason == "stop"
    assert r.output is None


@pytest.mark.parametrize("streaming", [False, True], ids=["unary", "stream"])
async def test_tool_call_round_trip_runs_the_real_tool(
    case: PluginCase, fake: FakeProvider, streaming: bool
) -> None:
    fake.script(
        Reply(tool_call=ToolCall("get_current_time", {"tz": "UTC"})),
        Reply(text="It is 12:00 in UTC."),
    )
    ai = case.genkit(fake)
    asked: list[str] = []

    @ai.tool()
    async def get_current_time(query: TimeQuery) -> str:
        """The current time in a timezone."""
        asked.append(query.tz)
        return "12:00"

    if streaming:
        sr = ai.generate_stream(prompt="What time is it?", tools=["get_current_time"])
        _ = [chunk async for chunk in sr.stream]
        r = await sr.response
    else:
        r = await ai.generate(prompt="What time is it?", tools=["get_current_time"])

    assert asked == ["UTC"]
    assert r.text == "It is 12:00 in UTC."
    first, second = generations(fake)
    if case.wire == "gemini":
        [declaration] = first.body["tools"][0]["functionDeclarations"]
        assert declaration["name"] == "get_current_time"
        assert second.body["contents"][-2]["parts"] == [
            {"functionCall": {"name": "get_current_time", "args": {"tz": "UTC"}}}
        ]
        assert second.body["contents"][-1] == {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_current_time",
                        "response": {"name": "get_current_time", "content": "12:00"},
                    }
                }
            ],
        }
    else:
        assert first.body["tools"][0]["function"]["name"] == "get_current_time"
        [call] = second.body["messages"][-2]["tool_calls"]
        assert call["function"] == {"name": "get_current_time", "arguments": '{"tz": "UTC"}'}
        assert second.body["messages"][-1] == {
            "role": "tool",
            "tool_call_id": call["id"],
            "content": "12:00",
        }
        assert second.body["tool_choice"] == "none"


# -- faults through the real plugins ----------------------------------------------------------


async def test_provider_error_statuses_return_failed_responses(
    case: PluginCase, fake: FakeProvider
) -> None:
    """HTTP status -> `r.error.status`; one app for all codes (OpenAI's init costs ~2 s)."""
    expected = {
        500: "INTERNAL",
        503: "UNAVAILABLE",
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        404: "NOT_FOUND",
        409: "ABORTED",
    }
    fake.script(*(Fault.status(code) for code in expected))
    ai = case.genkit(fake)

    seen = {code: await ai.generate(prompt="Hi") for code in expected}

    assert {code: r.finish_reason for code, r in seen.items()} == dict.fromkeys(expected, "failed")
    assert {code: r.error and r.error.status for code, r in seen.items()} == expected
    assert fake.calls() == len(expected)  # no SDK retry behind our back
    # Genkit hides the provider's message behind INTERNAL, and keeps it otherwise.
    assert seen[500].error is not None
    assert seen[500].error.message == "internal error"
    assert seen[503].error is not None
    assert "Fake provider error 503." in seen[503].error.message


async def test_rate_limit_retry_after_reaches_the_plugin_error(
    case: PluginCase, fake: FakeProvider
) -> None:
    """Both plugins copy Retry-After onto their GenkitError; the boxed `r.error` drops it."""
    fake.script(Fault.rate_limited(retry_after=2))
    ai = case.genkit(fake)
    seen: list[GenkitError] = []

    r = await ai.generate(prompt="Hi", use=[capture_model_errors(seen)])

    assert r.finish_reason == "failed"
    assert r.error is not None
    assert r.error.status == "RESOURCE_EXHAUSTED"
    [error] = seen
    assert error.status == "RESOURCE_EXHAUSTED"
    assert error.response_metadata == {"retry_after_ms": 2000.0}
    expected = genai_errors.ClientError if case.wire == "gemini" else openai.RateLimitError
    assert isinstance(error.__cause__, expected)


async def test_hang_is_cut_by_the_client_timeout(case: PluginCase, fake: FakeProvider) -> None:
    fake.script(Fault.hang(seconds=30))
    ai = case.genkit(fake, timeout=0.5)
    seen: list[GenkitError] = []

    started = time.monotonic()
    r = await ai.generate(prompt="Hi", use=[capture_model_errors(seen)])

    assert time.monotonic() - started < 15  # the timeout, not the 30 s hang, ended it
    assert r.finish_reason == "failed"
    assert r.error is not None
    assert r.error.status == "INTERNAL"  # a timeout is not classified as DEADLINE_EXCEEDED
    assert isinstance(seen[0].__cause__, case.timeout_cause)
    await fake.wait_until(lambda f: f.disconnects == 1)


async def test_mid_stream_drop_fails_after_some_chunks(
    case: PluginCase, fake: FakeProvider
) -> None:
    """The `async for` ends quietly; the failure is only on the final response."""
    fake.script(Fault.drop_after(chunks=2, reply=Reply(text="a b c d e f")))
    ai = case.genkit(fake)
    seen: list[GenkitError] = []

    sr = ai.generate_stream(prompt="Letters", use=[capture_model_errors(seen)])
    chunks = [chunk.text async for chunk in sr.stream]
    r = await sr.response

    assert chunks == ["a ", "b "]
    assert r.finish_reason == "failed"
    assert r.error is not None
    assert r.error.status == "INTERNAL"
    assert isinstance(seen[0].__cause__, case.drop_cause)


async def test_unary_drop_returns_a_failed_response(case: PluginCase, fake: FakeProvider) -> None:
    """Cut before any response, and cut half-way through a Content-Length body."""
    fake.script(Fault.drop_after(chunks=0), Fault.drop_after(chunks=1))
    ai = case.genkit(fake)
    seen: list[GenkitError] = []

    results = [await ai.generate(prompt="Hi", use=[capture_model_errors(seen)]) for _ in range(2)]

    assert [(r.finish_reason, r.error and r.error.status) for r in results] == [
        ("failed", "INTERNAL"),
        ("failed", "INTERNAL"),
    ]
    assert all(isinstance(e.__cause__, case.drop_cause) for e in seen)


# -- what ModelClient makes of the plugins' transport failures -------------------------------


def model_client(ai: Genkit, breaker: Breaker | None = None, **policy: Any) -> ModelClient:
    cfg = ModelCallPolicyConfig(**{"base_delay_ms": 1, "max_retries": 0, **policy})
    return ModelClient(ai, cfg, breaker)


async def test_a_dropped_connection_is_retried_like_an_unavailable_provider(
    case: PluginCase, fake: FakeProvider
) -> None:
    fake.script(Fault.drop_after(chunks=0), Reply(text="second attempt"))
    llm = model_client(case.genkit(fake), max_retries=1)

    r = await llm.generate(prompt="Hi")

    assert r.text == "second attempt"
    assert len(generations(fake)) == 2


async def test_dropped_connections_are_502s_that_open_the_breaker(
    case: PluginCase, fake: FakeProvider
) -> None:
    """The SDKs' own error types are recognised as the provider's, not taken for bugs."""
    fake.script(Fault.drop_after(chunks=0), Fault.drop_after(chunks=1))
    breaker = Breaker(BreakerConfig(failure_threshold=2, recovery_timeout=60))
    llm = model_client(case.genkit(fake), breaker)

    for _ in range(2):
        with pytest.raises(UpstreamError) as info:
            await llm.generate(prompt="Hi")
        assert info.value.status == 502

    assert breaker.state is BreakerState.OPEN


async def test_the_sdk_timing_out_is_a_504(case: PluginCase, fake: FakeProvider) -> None:
    fake.script(Fault.hang(seconds=30))
    llm = model_client(case.genkit(fake, timeout=0.5), timeout_ms=10_000)

    with pytest.raises(UpstreamTimeout):
        await llm.generate(prompt="Hi")
    await fake.wait_until(lambda f: f.disconnects == 1)


# -- model listing ----------------------------------------------------------------------------


async def test_gemini_listing_is_paginated_and_never_consumes_the_script(
    fake: FakeProvider,
) -> None:
    fake.script(Reply(text="scripted"))
    ai = GEMINI.genkit(fake)

    r = await ai.generate(prompt="Hi")

    assert r.text == "scripted"
    listings = [req for req in fake.requests if req.kind == "list"]
    assert [(req.path, dict(req.query)) for req in listings] == [
        ("/v1beta/models", {}),
        ("/v1beta/models", {"pageToken": "2"}),
    ]
    assert fake.calls("generate") == 1


async def test_gemini_failed_first_listing_is_cached_and_raised_raw(fake: FakeProvider) -> None:
    """Unlike model errors, a failed plugin init raises -- and keeps raising, unretried."""
    fake.fail_model_listing(times=1)
    fake.script(Reply(text="never sent"))
    ai = GEMINI.genkit(fake)

    for _ in range(2):
        with pytest.raises(genai_errors.ServerError):
            await ai.generate(prompt="Hi")

    assert fake.calls("list") == 1
    assert fake.calls("generate") == 0
    # A fresh plugin instance warmed up at start-up is the way out.
    fresh = GEMINI.genkit(fake)
    await fresh.registry.initialize_all_plugins()
    assert (await fresh.generate(prompt="Hi")).text == "never sent"


async def test_openai_listing_only_backs_list_actions(fake: FakeProvider) -> None:
    """Generation needs no listing; the catalogue (Dev UI) adds the listed ids."""
    fake.openai_models = ["gpt-4o-mini", "fake-chat-1"]
    ai = OPENAI.genkit(fake)

    assert (await ai.generate(prompt="Hi")).text == fake.default.text
    assert fake.calls("list") == 0
    names = {meta.name for meta in (await ai.registry.list_actions()).values()}

    assert "openai/fake-chat-1" in names
    assert fake.calls("list", wire="openai") == 1


# -- the fake on its own ----------------------------------------------------------------------


async def _openai_text(client: httpx.AsyncClient, fake: FakeProvider) -> str:
    response = await client.post(
        f"{fake.openai_base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    )
    return str(response.json()["choices"][0]["message"]["content"])


async def test_script_is_fifo_across_wires_then_default(fake: FakeProvider) -> None:
    fake.script(Reply(text="first"), Reply(text="second"))
    fake.default = Reply(text="fallback")

    async with httpx.AsyncClient(timeout=5) as client:
        listing = await client.get(f"{fake.openai_base_url}/models")
        first = await _openai_text(client, fake)
        gemini = await client.post(
            f"{fake.gemini_base_url}/v1beta/models/gemini-2.5-flash:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
        third = await _openai_text(client, fake)

    assert listing.json()["data"][0]["id"] == "gpt-4o-mini"
    assert first == "first"
    assert gemini.json()["candidates"][0]["content"]["parts"] == [{"text": "second"}]
    assert third == "fallback"
    assert (fake.calls("generate"), fake.calls("list"), fake.pending()) == (3, 1, 0)


async def test_error_bodies_follow_each_providers_shape(fake: FakeProvider) -> None:
    fake.script(Fault.rate_limited(retry_after=1), Fault.rate_limited(retry_after=1))

    async with httpx.AsyncClient(timeout=5) as client:
        gemini = await client.post(
            f"{fake.gemini_base_url}/v1beta/models/gemini-2.5-flash:generateContent", json={}
        )
        oai = await client.post(f"{fake.openai_base_url}/chat/completions", json={"model": "m"})

    assert gemini.status_code == oai.status_code == 429
    assert gemini.headers["retry-after"] == oai.headers["retry-after"] == "1"
    error = gemini.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["details"][0]["retryDelay"] == "1s"
    assert oai.json()["error"] == {
        "message": "Resource has been exhausted.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }


async def test_openai_stream_ends_with_usage_and_done(fake: FakeProvider) -> None:
    fake.script(Reply(text="x y"))

    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(
            f"{fake.openai_base_url}/chat/completions",
            json={"model": "m", "stream": True, "stream_options": {"include_usage": True}},
        )

    events = list(iter_sse_data(response.content))
    assert response.headers["content-type"] == "text/event-stream"
    assert events[-1] == "[DONE]"
    assert '"usage"' in events[-2]
    assert '"finish_reason": "stop"' in events[-3]


async def test_hang_ends_after_its_seconds_without_a_response(fake: FakeProvider) -> None:
    fake.script(Fault.hang(seconds=0.3))

    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await _openai_text(client, fake)

    # Bounds far apart: the hang's own 0.3 s, and the client's 30 s timeout.
    assert 0.25 <= time.monotonic() - started < 15
    assert fake.disconnects == 0  # the fake hung up first; the client did not leave


async def test_stop_ends_a_hang_promptly() -> None:
    fake = FakeProvider().start()
    fake.script(Fault.hang(seconds=30))
    async with httpx.AsyncClient(timeout=10) as client:
        pending = asyncio.ensure_future(_openai_text(client, fake))
        await fake.wait_until(lambda f: f.calls() == 1)

        started = time.monotonic()
        await asyncio.to_thread(fake.stop)

        assert time.monotonic() - started < 15  # not the hang's 30 s
        with pytest.raises(httpx.RemoteProtocolError):
            await asyncio.wait_for(pending, timeout=10)


def test_serves_a_separate_process(fake: FakeProvider) -> None:
    """The fake's own thread keeps serving while this test blocks on a child process."""
    fake.script(Reply(text="from another process"))
    code = textwrap.dedent(
        f"""
        import httpx
        r = httpx.post("{fake.openai_base_url}/chat/completions", timeout=5,
                       json={{"model": "m", "messages": []}})
        print(r.json()["choices"][0]["message"]["content"])
        """
    )

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )

    assert out.stdout.strip() == "from another process"
