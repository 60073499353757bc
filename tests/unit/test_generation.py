# SPDX-License-Identifier: Apache-2.0
"""ModelClient and ModelCallPolicy against scripted models (the upstream boundary).

The scripted model is a real Genkit model action whose behaviour the test dictates:
fail N times with a status, hang, stream some chunks then fail.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
import openai
import pytest
import structlog
from genkit import (
    ActionRunContext,
    Genkit,
    GenkitError,
    Message,
    ModelInfo,
    ModelRequest,
    ModelResponse,
    ModelResponseChunk,
    Part,
    Supports,
)
from pydantic import BaseModel, Field, ValidationError

from genkit_endpoints.core.errors import (
    InternalError,
    InvalidModelOutput,
    UpstreamError,
    UpstreamTimeout,
)
from genkit_endpoints.model.client import ModelCallPolicy, ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.policies.breaker import Breaker, BreakerConfig, BreakerOpen, BreakerState
from tests.support.virtual_time import run_virtual, run_virtual_raising

Step = Callable[[ActionRunContext], Awaitable[str]]


@dataclass
class Script:
    steps: list[Step] = field(default_factory=list)
    calls: int = 0

    async def model(self, request: ModelRequest, ctx: ActionRunContext) -> ModelResponse:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        text = await step(ctx)
        return ModelResponse(
            message=Message(role="model", content=[Part.from_text(text)]), finish_reason="stop"
        )


def fail(status: str, retry_after_ms: float | None = None) -> Step:
    async def step(ctx: ActionRunContext) -> str:
        meta = {"retry_after_ms": retry_after_ms} if retry_after_ms is not None else None
        raise GenkitError(status=status, message="upstream said no", response_metadata=meta)

    return step


def answer(text: str, *, chunks: int = 0, delay: float = 0, fail_after: bool = False) -> Step:
    async def step(ctx: ActionRunContext) -> str:
        await asyncio.sleep(delay)
        for i in range(chunks):
            if ctx.is_streaming:
                ctx.send_chunk(ModelResponseChunk(role="model", content=[Part.from_text(f"c{i} ")]))
            await asyncio.sleep(0.01)
        if fail_after:
            raise GenkitError(status="UNAVAILABLE", message="dropped mid-stream")
        return text

    return step


def client(script: Script, **policy: Any) -> ModelClient:
    ai = Genkit()
    ai.define_model(
        name="test/scripted",
        fn=script.model,
        info=ModelInfo(supports=Supports(multiturn=True, output=["text", "json"])),
    )
    cfg = ModelCallPolicyConfig(**{"base_delay_ms": 1, "max_delay_ms": 5000, **policy})
    return ModelClient(ai, cfg)


async def test_transient_failures_are_retried_then_succeed() -> None:
    script = Script([fail("UNAVAILABLE"), fail("RESOURCE_EXHAUSTED"), answer("hello")])
    r = await client(script, max_retries=2).generate(model="test/scripted", prompt="hi")
    assert r.text == "hello"
    assert script.calls == 3


async def test_retries_are_bounded_and_end_in_502() -> None:
    script = Script([fail("UNAVAILABLE")])
    with pytest.raises(UpstreamError) as info:
        await client(script, max_retries=2).generate(model="test/scripted", prompt="hi")
    assert info.value.status == 502
    assert script.calls == 3


async def test_client_side_statuses_are_not_retried() -> None:
    script = Script([fail("INVALID_ARGUMENT"), answer("never")])
    with pytest.raises(UpstreamError):
        await client(script, max_retries=3).generate(model="test/scripted", prompt="hi")
    assert script.calls == 1


# The timing tests run on a virtual clock: exact durations, no real waiting, and a busy
# machine cannot stretch them.


def test_retry_after_is_honoured_as_a_floor() -> None:
    script = Script([fail("RESOURCE_EXHAUSTED", retry_after_ms=300), answer("ok")])
    r, took = run_virtual(
        client(script, max_retries=1).generate(model="test/scripted", prompt="hi")
    )
    assert r.text == "ok"
    assert took == pytest.approx(0.3)  # the backoff alone would be at most 1 ms


def test_retry_after_beyond_max_delay_is_not_waited_for() -> None:
    script = Script([fail("RESOURCE_EXHAUSTED", retry_after_ms=60_000), answer("ok")])
    call = client(script, max_retries=3, max_delay_ms=1000).generate(
        model="test/scripted", prompt="hi"
    )
    _, took = run_virtual_raising(call, UpstreamError)
    assert script.calls == 1
    assert took == 0


def test_hang_is_cut_at_the_deadline_with_504() -> None:
    script = Script([answer("late", delay=10)])
    call = client(script, timeout_ms=200).generate(model="test/scripted", prompt="hi")
    _, took = run_virtual_raising(call, UpstreamTimeout)
    assert took == pytest.approx(0.2)
    assert script.calls == 1


def test_retries_stop_when_the_deadline_leaves_no_room() -> None:
    script = Script([fail("UNAVAILABLE")])
    call = client(script, timeout_ms=300, max_retries=10, base_delay_ms=250).generate(
        model="test/scripted", prompt="hi"
    )
    _, took = run_virtual_raising(call, UpstreamError)
    # One backoff (125-250 ms) fits in the 300 ms; the second (250-500 ms) never does, so
    # the call gives up at once rather than sleeping into the deadline.
    assert script.calls == 2
    assert 0.125 <= took <= 0.25


async def test_stream_failure_after_first_chunk_is_not_retried() -> None:
    script = Script([answer("x", chunks=2, fail_after=True), answer("second attempt")])
    seen: list[str] = []
    with pytest.raises(UpstreamError):
        await client(script, max_retries=3).stream(seen.append, model="test/scripted", prompt="hi")
    assert script.calls == 1
    assert seen == ["c0 ", "c1 "]


async def test_stream_failure_before_first_chunk_is_retried() -> None:
    script = Script([fail("UNAVAILABLE"), answer("done", chunks=2)])
    seen: list[str] = []
    r = await client(script, max_retries=1).stream(seen.append, model="test/scripted", prompt="hi")
    assert r.text == "done"
    assert seen == ["c0 ", "c1 "]
    assert script.calls == 2


def test_first_chunk_timeout_applies_to_streams() -> None:
    script = Script([answer("slow", chunks=1, delay=5)])
    call = client(script, first_chunk_timeout_ms=150, timeout_ms=10_000).stream(
        lambda _: None, model="test/scripted", prompt="hi"
    )
    _, took = run_virtual_raising(call, UpstreamTimeout)
    assert took == pytest.approx(0.15)


async def test_cancelling_a_stream_consumer_cancels_the_model_call() -> None:
    cancelled = asyncio.Event()

    async def endless(ctx: ActionRunContext) -> str:
        try:
            while True:
                ctx.send_chunk(ModelResponseChunk(role="model", content=[Part.from_text("x")]))
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.ensure_future(
        client(Script([endless])).stream(lambda _: None, model="test/scripted", prompt="hi")
    )
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.wait_for(cancelled.wait(), 2)


class Pet(BaseModel):
    name: str
    age: int = Field(ge=0, le=30)


async def test_structured_output_is_validated_against_the_schema() -> None:
    script = Script([answer('{"name": "Rex", "age": 99}')])
    with pytest.raises(InvalidModelOutput) as info:
        await client(script).structured(Pet, model="test/scripted", prompt="a pet")
    assert info.value.status == 502


async def test_non_json_structured_output_is_invalid_model_output() -> None:
    script = Script([answer("not json {")])
    with pytest.raises(InvalidModelOutput):
        await client(script).structured(Pet, model="test/scripted", prompt="a pet")


async def test_valid_structured_output_is_returned_as_the_model_type() -> None:
    script = Script([answer('{"name": "Rex", "age": 3}')])
    pet = await client(script).structured(Pet, model="test/scripted", prompt="a pet")
    assert pet == Pet(name="Rex", age=3)


async def test_unknown_model_is_an_error_not_a_crash() -> None:
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is the assertion below
        await client(Script([answer("x")])).generate(model="test/missing", prompt="hi")
    assert getattr(info.value, "status", None) in (500, 502)


def test_base_delay_sets_the_first_backoff() -> None:
    script = Script([fail("UNAVAILABLE"), answer("ok")])
    _, took = run_virtual(
        client(script, max_retries=1, base_delay_ms=400).generate(
            model="test/scripted", prompt="hi"
        )
    )
    # jitter within [base/2, base]
    assert 0.2 <= took <= 0.4


# -- the provider's failures against bugs: only the first are 502/504 and open the breaker --

THRESHOLD = 2


def raises(exc: BaseException) -> Step:
    async def step(ctx: ActionRunContext) -> str:
        raise exc

    return step


def guarded(script: Script, **policy: Any) -> tuple[ModelClient, Breaker]:
    """A client on the scripted model behind a breaker that opens after THRESHOLD failures."""
    llm = client(script, **{"max_retries": 0, **policy})
    breaker = Breaker(BreakerConfig(failure_threshold=THRESHOLD, recovery_timeout=60))
    return ModelClient(llm.ai, llm.policy, breaker), breaker


class CityQuery(BaseModel):
    city: str = "Oslo"


def errors_of(logs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["log_level"] == "error"]


async def bug_reported_as_internal(ctx: ActionRunContext) -> str:
    """How the Gemini plugin reports any non-API exception of a unary call."""
    reply: dict[str, str] = {}
    try:
        return reply["choices"]
    except KeyError as exc:
        raise GenkitError(status="INTERNAL", message="Unexpected error") from exc


@pytest.mark.parametrize(
    "step",
    [
        raises(KeyError("choices")),
        bug_reported_as_internal,
    ],
    ids=["raw", "plugin-wrapped"],
)
async def test_a_model_plugin_bug_is_a_500_never_retried_nor_counted(step: Step) -> None:
    """A KeyError inside the plugin arrives wrapped by Genkit like a connection error
    would; it is still a bug: 500, logged with the plugin's own traceback."""
    script = Script([step])
    llm, breaker = guarded(script, max_retries=2)
    with structlog.testing.capture_logs() as logs:
        for _ in range(THRESHOLD + 2):
            with pytest.raises(InternalError) as info:
                await llm.generate(model="test/scripted", prompt="hi")
            assert info.value.status == 500
    assert breaker.state is BreakerState.CLOSED
    assert script.calls == THRESHOLD + 2  # never retried
    failure = errors_of(logs)[0]
    assert failure["event"] == "model_plugin_failed"
    assert isinstance(failure["exc_info"], KeyError)
    assert failure["exc_info"].__traceback__ is not None


async def test_a_failing_tool_is_a_500_logged_with_its_traceback_and_not_counted() -> None:
    ai = Genkit()

    @ai.tool(description="Weather for a city.")
    async def weather(query: CityQuery) -> str:
        return str(1 / 0)  # the bug

    async def model(request: ModelRequest, ctx: ActionRunContext) -> ModelResponse:
        if any(m.role == "tool" for m in request.messages):
            part = Part.from_text("never reached")
        else:
            part = Part.from_tool_request(name="weather", input={"city": "Oslo"}, ref="t1")
        return ModelResponse(message=Message(role="model", content=[part]), finish_reason="stop")

    ai.define_model(
        name="test/tooling",
        fn=model,
        info=ModelInfo(supports=Supports(multiturn=True, tools=True)),
    )
    breaker = Breaker(BreakerConfig(failure_threshold=THRESHOLD, recovery_timeout=60))
    llm = ModelClient(ai, ModelCallPolicyConfig(max_retries=0), breaker)
    with structlog.testing.capture_logs() as logs:
        for _ in range(THRESHOLD + 1):
            with pytest.raises(InternalError):
                await llm.generate(model="test/tooling", prompt="weather?", tools=[weather])
    assert breaker.state is BreakerState.CLOSED
    failures = [e for e in logs if e["event"] == "tool_failed"]
    assert len(failures) == THRESHOLD + 1
    assert failures[0]["tool"] == "weather"
    # What the JSON log line carries: the traceback as text, formatted as in production.
    text = structlog.processors.format_exc_info(None, "error", dict(failures[0]))["exception"]
    assert "Traceback" in text
    assert "ZeroDivisionError" in text
    assert "1 / 0" in text  # the tool's own frame, not only Genkit's wrapper


async def test_a_mistyped_generate_argument_propagates_and_is_not_counted() -> None:
    llm, breaker = guarded(Script([answer("hi")]))
    for _ in range(THRESHOLD + 2):
        with pytest.raises(TypeError):
            await llm.generate(model="test/scripted", prompt="hi", promt_typo=1)
    assert breaker.state is BreakerState.CLOSED


async def test_a_stream_consumer_that_fails_is_not_the_provider_failing() -> None:
    """E.g. a callback writing to a client that hung up: its ConnectionResetError is raised
    as it is and never counted, though a provider's connection error would be."""

    seen: list[str] = []

    def gone(chunk: str) -> None:
        seen.append(chunk)
        raise ConnectionResetError("client went away")

    llm, breaker = guarded(Script([answer("done", chunks=3)]))
    with structlog.testing.capture_logs() as logs:
        for _ in range(THRESHOLD + 1):
            with pytest.raises(ConnectionResetError):
                await llm.stream(gone, model="test/scripted", prompt="hi")
    assert breaker.state is BreakerState.CLOSED
    # The model stopped at the chunk the consumer failed on, and nothing was logged as a
    # failure of the model or its plugin.
    assert seen == ["c0 "] * (THRESHOLD + 1)
    assert [e for e in logs if e["log_level"] == "error"] == []


async def test_a_refused_connection_is_retried_like_an_unavailable_provider() -> None:
    refused = httpx.ConnectError("connection refused")
    script = Script([raises(refused), answer("second attempt")])
    r = await client(script, max_retries=1).generate(model="test/scripted", prompt="hi")
    assert r.text == "second attempt"
    assert script.calls == 2


async def test_a_provider_sdk_timeout_is_a_504() -> None:
    timeout = openai.APITimeoutError(request=httpx2.Request("POST", "http://provider.invalid"))
    llm, breaker = guarded(Script([raises(timeout)]))
    for _ in range(THRESHOLD):
        with pytest.raises(UpstreamTimeout):
            await llm.generate(model="test/scripted", prompt="hi")
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize(
    "step",
    [
        raises(httpx.ConnectError("connection refused")),
        raises(openai.APIConnectionError(request=httpx2.Request("POST", "http://p.invalid"))),
        fail("UNAVAILABLE"),
        fail("INTERNAL"),
    ],
    ids=["httpx-connect", "openai-connection", "genkit-unavailable", "genkit-internal"],
)
async def test_provider_failures_are_502_and_open_the_breaker(step: Step) -> None:
    llm, breaker = guarded(Script([step]))
    for _ in range(THRESHOLD):
        with pytest.raises(UpstreamError) as info:
            await llm.generate(model="test/scripted", prompt="hi")
        assert info.value.status == 502
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(BreakerOpen):
        await llm.generate(model="test/scripted", prompt="hi")


async def test_schema_invalid_output_is_502_and_opens_the_breaker() -> None:
    llm, breaker = guarded(Script([answer('{"name": "Rex", "age": 99}')]))
    for _ in range(THRESHOLD):
        with pytest.raises(InvalidModelOutput):
            await llm.structured(Pet, model="test/scripted", prompt="a pet")
    assert breaker.state is BreakerState.OPEN


async def test_a_model_answering_failed_itself_is_the_provider_failing() -> None:
    async def gave_up(request: ModelRequest, ctx: ActionRunContext) -> ModelResponse:
        return ModelResponse(
            message=Message(role="model", content=[Part.from_text("")]),
            finish_reason="failed",
            finish_message="overloaded",
        )

    ai = Genkit()
    ai.define_model(name="test/gave-up", fn=gave_up)
    breaker = Breaker(BreakerConfig(failure_threshold=THRESHOLD, recovery_timeout=60))
    llm = ModelClient(ai, ModelCallPolicyConfig(max_retries=0), breaker)
    for _ in range(THRESHOLD):
        with pytest.raises(UpstreamError):
            await llm.generate(model="test/gave-up", prompt="hi")
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize(
    "mistake", [{"output_format": "no-such-format"}, {"tools": ["no_such_tool"]}]
)
async def test_a_call_genkit_refuses_is_a_logged_500_not_the_provider(
    mistake: dict[str, Any],
) -> None:
    llm, breaker = guarded(Script([answer("never")]))
    with structlog.testing.capture_logs() as logs:
        for _ in range(THRESHOLD + 1):
            with pytest.raises(InternalError) as info:
                await llm.generate(model="test/scripted", prompt="hi", **mistake)
            assert info.value.detail == InternalError.default_detail
    assert breaker.state is BreakerState.CLOSED
    failure = errors_of(logs)[0]
    assert failure["event"] == "generate_failed"
    assert isinstance(failure["exc_info"], GenkitError)


def test_the_policy_genkit_builds_per_call_reuses_the_validated_config() -> None:
    """Genkit instantiates the middleware from its JSON config for every generate."""
    fields = ModelCallPolicyConfig(timeout_ms=1500, max_retries=1).model_dump(mode="json")
    first, second = ModelCallPolicy(**fields), ModelCallPolicy(**dict(reversed(fields.items())))
    assert first.config is second.config
    assert first.config == ModelCallPolicyConfig(timeout_ms=1500, max_retries=1)
    # What Genkit does to the instance before each call: a copy that is the same config.
    assert copy.deepcopy(first.config) is first.config
    assert first.config.model_copy(deep=True) is first.config
    with pytest.raises(ValidationError):
        first.config.timeout_ms = 5  # type: ignore[misc]


@pytest.mark.parametrize("bad", [{"timeout_ms": -1}, {"max_retries": [1]}, {"max_retries": 11}])
def test_a_bad_policy_config_is_refused_every_time(bad: dict[str, Any]) -> None:
    for _ in range(2):
        with pytest.raises(ValidationError):
            ModelCallPolicy(**bad)
