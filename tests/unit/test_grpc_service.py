# SPDX-License-Identifier: Apache-2.0
"""The gRPC service over a real ``grpc.aio`` server and channel, on the offline model.

Every RPC with empty and custom requests, input validation and status mapping.
Server-level behaviour (deadlines, size, health, drain, reflection, access log, request
id) is in ``test_grpc_server.py``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
import structlog
from genkit import Genkit
from google.protobuf import json_format

from endpoints_hello import schemas
from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.core.errors import RateLimited, ServiceUnavailable
from genkit_endpoints.core.routes import RouteTable, RunContext
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.policies.breaker import Breaker, BreakerConfig, BreakerState
from genkit_endpoints.policies.cache import CacheConfig, FlowCache
from tests.unit.conftest import CrashReports
from tests.unit.grpc_harness import (
    LEAKS,
    finish,
    plain,
    rest_output,
    rest_stream,
    serving,
)

pytestmark = pytest.mark.timeout(30)


async def test_health_rpc_answers_ok_without_a_model() -> None:
    async with serving() as h:
        reply = await h.stub.Health(pb.HealthRequest())
        assert reply.status == "ok"
        assert h.model.completed_calls == 0


UNARY_CASES = [
    ("TellJoke", "tell_joke", pb.JokeRequest, {}),
    ("TellJoke", "tell_joke", pb.JokeRequest, {"name": "Ada", "username": "grace"}),
    ("DescribeImage", "describe_image", pb.ImageRequest, {}),
    ("DescribeImage", "describe_image", pb.ImageRequest, {"image_url": "https://x.example/c.png"}),
    ("GenerateCharacter", "generate_character", pb.CharacterRequest, {}),
    ("GenerateCharacter", "generate_character", pb.CharacterRequest, {"name": "Kai"}),
    ("PirateChat", "pirate_chat", pb.ChatRequest, {}),
    ("PirateChat", "pirate_chat", pb.ChatRequest, {"question": "Where is the gold?"}),
    ("GenerateCode", "generate_code", pb.CodeRequest, {}),
    ("GenerateCode", "generate_code", pb.CodeRequest, {"description": "fizzbuzz", "language": "c"}),
]


@pytest.mark.parametrize(("rpc", "flow", "request_type", "fields"), UNARY_CASES)
async def test_unary_rpc_returns_what_rest_returns(
    rpc: str, flow: str, request_type: Any, fields: dict[str, str]
) -> None:
    """Empty fields take the REST defaults; the reply is the REST JSON, field for field."""
    async with serving() as h:
        reply = await getattr(h.stub, rpc)(request_type(**fields))
        expected = await rest_output(h.table, flow, fields)
    # ParseDict rejects keys the proto lacks: the REST shape maps onto it exactly.
    assert reply == json_format.ParseDict(plain(expected), type(reply)())
    assert all(value for value in plain(expected).values())


async def test_generate_character_respects_the_output_constraints() -> None:
    async with serving() as h:
        reply = await h.stub.GenerateCharacter(pb.CharacterRequest())
    assert reply.name
    assert reply.back_story
    assert len(reply.abilities) <= 10
    for skill in (reply.skills.strength, reply.skills.charisma, reply.skills.endurance):
        assert 0 <= skill <= 100
    as_json = json.loads(json_format.MessageToJson(reply))
    assert as_json["backStory"] == reply.back_story
    assert "back_story" not in as_json


async def test_translate_defaults_and_custom_text() -> None:
    async with serving() as h:
        default = await h.stub.TranslateText(pb.TranslateRequest())
        custom = await h.stub.TranslateText(
            pb.TranslateRequest(text="Good morning", target_language="German")
        )
    assert default.original_text == schemas.DEFAULT_TRANSLATE_TEXT
    assert default.target_language == "French"
    assert (custom.original_text, custom.target_language) == ("Good morning", "German")
    for reply in (default, custom):
        assert reply.translated_text
        assert reply.confidence in {"high", "medium", "low"}


@pytest.mark.parametrize("fields", [{}, {"code": "x = 1\n", "language": "python"}])
async def test_review_code_returns_the_rest_json_as_a_string(fields: dict[str, str]) -> None:
    async with serving() as h:
        reply = await h.stub.ReviewCode(pb.CodeReviewRequest(**fields))
        expected = await rest_output(h.table, "review_code", fields)
    review = json.loads(reply.review)
    assert review == expected
    assert set(review) == {"summary", "issues", "score", "language"}
    assert 1 <= review["score"] <= 10


STREAM_CASES = [
    ("TellStory", "tell_story", pb.StoryRequest, {}),
    ("TellStory", "tell_story", pb.StoryRequest, {"topic": "a lighthouse keeper"}),
    ("TellJokeStream", "tell_joke_stream", pb.JokeRequest, {}),
    ("TellJokeStream", "tell_joke_stream", pb.JokeRequest, {"name": "Ada"}),
]


@pytest.mark.parametrize(("rpc", "flow", "request_type", "fields"), STREAM_CASES)
async def test_streaming_rpc_sends_chunks_that_add_up_to_the_output(
    rpc: str, flow: str, request_type: Any, fields: dict[str, str]
) -> None:
    async with serving() as h:
        chunks = [c.text async for c in getattr(h.stub, rpc)(request_type(**fields))]
        expected = await rest_stream(h.table, flow, fields)
    assert len(chunks) >= 3
    assert all(0 < len(c.split()) <= 3 for c in chunks)  # the offline model's 3-word chunks
    assert "".join(chunks) == expected
    assert expected.strip()


@pytest.mark.parametrize(
    ("rpc", "message", "field"),
    [
        ("TellJoke", pb.JokeRequest(name="x" * 201), "name"),
        ("TellJokeStream", pb.JokeRequest(name="y" * 201), "name"),
        ("GenerateCode", pb.CodeRequest(language="py thon!"), "language"),
        ("ReviewCode", pb.CodeReviewRequest(language="c/c"), "language"),
        ("DescribeImage", pb.ImageRequest(image_url="file:///etc/passwd"), "image_url"),
    ],
)
async def test_invalid_input_is_invalid_argument_naming_the_field(
    rpc: str, message: Any, field: str
) -> None:
    async with serving() as h:
        call = getattr(h.stub, rpc)(message)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await finish(call)
        assert h.model.completed_calls == 0
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert f"{field}:" in details
    assert not any(leak in details for leak in LEAKS)


def _failing(exc: Exception) -> Callable[[Genkit, RouteTable], RouteTable]:
    """Patch TellJoke's route with a flow that raises ``exc``."""

    def patch(ai: Genkit, table: RouteTable) -> RouteTable:
        @ai.flow(name="always_fails")
        async def always_fails(data: schemas.JokeInput) -> schemas.JokeResponse:
            raise exc

        return RouteTable.build(
            dataclasses.replace(r, flow=always_fails) if r.grpc_method == "TellJoke" else r
            for r in table
        )

    return patch


@pytest.mark.parametrize(
    ("exc", "code", "retry_after"),
    [
        (RateLimited(headers={"Retry-After": "7"}), grpc.StatusCode.RESOURCE_EXHAUSTED, "7"),
        (ServiceUnavailable(headers={"retry-after": "30"}), grpc.StatusCode.UNAVAILABLE, "30"),
        (RuntimeError("secret internal message"), grpc.StatusCode.INTERNAL, None),
    ],
)
async def test_errors_map_to_status_codes_with_retry_after(
    exc: Exception, code: grpc.StatusCode, retry_after: str | None, crash_reports: CrashReports
) -> None:
    async with serving(patch=_failing(exc)) as h:
        call = h.stub.TellJoke(pb.JokeRequest())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        trailers = dict(await call.trailing_metadata() or ())
    assert info.value.code() == code
    assert trailers.get("retry-after") == retry_after
    assert not any(leak in (info.value.details() or "") for leak in LEAKS)
    # Only the bug is a crash report; a refusal raised on purpose never is.
    assert crash_reports == ([exc] if code == grpc.StatusCode.INTERNAL else [])


async def test_unexpected_failure_is_logged_but_not_sent() -> None:
    async with serving(patch=_failing(RuntimeError("secret internal message"))) as h:
        with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.TellJoke(pb.JokeRequest())
    assert info.value.details() == "The server could not complete the request."
    (failure,) = [e for e in logs if e["log_level"] == "error"]  # logged once, not per layer
    assert failure["event"] == "flow_failed"
    assert isinstance(failure["exc_info"], RuntimeError)  # the flow's own exception
    assert "secret internal message" in str(failure["exc_info"])


def _one_broken_flow(breaker: Breaker) -> Callable[[Genkit, RouteTable], RouteTable]:
    """TellJoke calls generate with a mistyped argument; PirateChat is fine. Both share
    one ModelClient behind ``breaker``."""

    def patch(ai: Genkit, table: RouteTable) -> RouteTable:
        llm = ModelClient(ai, ModelCallPolicyConfig(), breaker)

        @ai.flow(name="broken_joke")
        async def broken_joke(data: schemas.JokeInput) -> schemas.JokeResponse:
            response = await llm.generate(prompt=data.name, promt_typo=1)
            return schemas.JokeResponse(joke=response.text)

        @ai.flow(name="guarded_chat")
        async def guarded_chat(data: schemas.ChatInput) -> schemas.ChatResponse:
            response = await llm.generate(prompt=data.question)
            return schemas.ChatResponse(answer=response.text)

        flows = {"TellJoke": broken_joke, "PirateChat": guarded_chat}
        return RouteTable.build(
            dataclasses.replace(r, flow=flows.get(r.grpc_method or "", r.flow)) for r in table
        )

    return patch


async def test_a_bug_in_one_flow_is_internal_and_never_opens_the_breaker(
    crash_reports: CrashReports,
) -> None:
    breaker = Breaker(BreakerConfig(failure_threshold=2, recovery_timeout=60))
    async with serving(patch=_one_broken_flow(breaker)) as h:
        codes = []
        with structlog.testing.capture_logs() as logs:
            for _ in range(4):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await h.stub.TellJoke(pb.JokeRequest())
                codes.append(info.value.code())
        reply = await h.stub.PirateChat(pb.ChatRequest(question="Where is the gold?"))
    assert codes == [grpc.StatusCode.INTERNAL] * 4
    assert info.value.details() == "The server could not complete the request."
    assert breaker.state is BreakerState.CLOSED
    assert reply.answer
    failures = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in failures] == ["flow_failed"] * 4
    assert all(isinstance(e["exc_info"], TypeError) for e in failures)
    assert crash_reports == [e["exc_info"] for e in failures]


async def test_grpc_serves_cacheable_rpcs_from_the_flow_cache() -> None:
    """Identical TranslateText calls reach the model once; ``cache-control: no-cache``
    metadata skips the read, on gRPC as on REST and the callable protocol."""
    async with serving(run=RunContext(cache=FlowCache(CacheConfig()))) as h:
        request = pb.TranslateRequest(text="Bonjour, tout le monde.", target_language="German")
        first = await h.stub.TranslateText(request, timeout=10)
        calls = h.model.completed_calls
        second = await h.stub.TranslateText(request, timeout=10)
        assert second == first
        assert h.model.completed_calls == calls  # answered from the cache
        await h.stub.TranslateText(request, metadata=(("cache-control", "no-cache"),), timeout=10)
        assert h.model.completed_calls > calls  # the read was skipped
