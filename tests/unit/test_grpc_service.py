"""The gRPC service over a real ``grpc.aio`` server and channel, on the offline model.

Each test builds its own Genkit instance, route table and server on 127.0.0.1:0 (SPEC
§2.5): every RPC, input validation and status mapping (§2.3), deadlines and cancellation,
message size, health and drain (§6.2), reflection only in DEBUG, the access log and the
request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import structlog
from genkit import Genkit
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from endpoints_hello import schemas
from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from genkit_endpoints import routes
from genkit_endpoints.config import GrpcConfig, ModelCallPolicyConfig, OfflineModelConfig
from genkit_endpoints.errors import RateLimited, ServiceUnavailable
from genkit_endpoints.generation import ModelClient
from genkit_endpoints.grpc.encoding import json_field
from genkit_endpoints.grpc.server import GrpcServer, create_grpc_server
from genkit_endpoints.health import Readiness
from genkit_endpoints.models.offline import OFFLINE_MODEL, OfflineModel
from genkit_endpoints.routes import RouteTable

pytestmark = pytest.mark.timeout(30)

SERVICE = pb.DESCRIPTOR.services_by_name["GenkitService"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
LEAKS = ("Error", "Exception", "pydantic", "Traceback", "genkit_endpoints", "secret")


@dataclass
class Harness:
    server: GrpcServer
    stub: pb_grpc.GenkitServiceStub
    channel: grpc.aio.Channel
    model: OfflineModel
    table: RouteTable


def app_table(ai: Genkit) -> RouteTable:
    """The app's route table; ReviewCode's JSON encoder is set here until flows.py sets it."""
    table = build_routes(ai, ModelClient(ai, ModelCallPolicyConfig()))
    return RouteTable(
        dataclasses.replace(r, grpc_encode=json_field("review"))
        if r.grpc_method == "ReviewCode" and r.grpc_encode is None
        else r
        for r in table
    )


@contextlib.asynccontextmanager
async def serving(
    *,
    offline: OfflineModelConfig | None = None,
    readiness: Readiness | None = None,
    patch: Callable[[Genkit, RouteTable], RouteTable] | None = None,
    **cfg: Any,
) -> AsyncIterator[Harness]:
    model = OfflineModel(offline)
    ai = Genkit(plugins=[model], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    table = app_table(ai)
    if patch is not None:
        table = patch(ai, table)
    config = GrpcConfig(**{"host": "127.0.0.1", "port": 0, **cfg})
    server = create_grpc_server(
        table, service=SERVICE, readiness=readiness or Readiness(), cfg=config
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Harness(server, pb_grpc.GenkitServiceStub(channel), channel, model, table)
    finally:
        await channel.close()
        await server.drain(0)


def plain(data: dict[str, Any]) -> dict[str, Any]:
    """A REST output as gRPC's JSON mapping shows it: unset (None) fields are absent."""
    return {k: v for k, v in data.items() if v is not None}


async def rest_output(table: RouteTable, flow: str, raw: dict[str, Any]) -> Any:
    route = table.by_name[flow]
    return await routes.invoke(route, routes.parse_input(route, raw))


async def rest_stream(table: RouteTable, flow: str, raw: dict[str, Any]) -> str:
    route = table.by_name[flow]
    async for event in routes.stream(route, routes.parse_input(route, raw)):
        if isinstance(event, routes.Final):
            return str(event.output)
    raise AssertionError("no final event")


async def finish(call: Any) -> list[Any]:
    """Await a unary call or read a streaming one to its end (read() mixes with nothing)."""
    if not hasattr(call, "read"):
        return [await call]
    replies = []
    while (reply := await call.read()) is not grpc.aio.EOF:
        replies.append(reply)
    return replies


async def wait_for(predicate: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


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
        ("TellJokeStream", pb.JokeRequest(username="y" * 201), "username"),
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

        return RouteTable(
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
    exc: Exception, code: grpc.StatusCode, retry_after: str | None
) -> None:
    async with serving(patch=_failing(exc)) as h:
        call = h.stub.TellJoke(pb.JokeRequest())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        trailers = dict(await call.trailing_metadata() or ())
    assert info.value.code() == code
    assert trailers.get("retry-after") == retry_after
    assert not any(leak in (info.value.details() or "") for leak in LEAKS)


async def test_unexpected_failure_is_logged_but_not_sent() -> None:
    async with serving(patch=_failing(RuntimeError("secret internal message"))) as h:
        with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.TellJoke(pb.JokeRequest())
    assert info.value.details() == "The server could not complete the request."
    (failure,) = [e for e in logs if e["event"] == "grpc_flow_failed"]
    assert "secret internal message" in repr(failure["exc_info"].__cause__)


def test_config_sets_keepalive_size_and_reuseport_explicitly() -> None:
    options = dict(GrpcConfig(max_receive_bytes=2048).channel_options())
    assert options["grpc.max_receive_message_length"] == 2048
    assert options["grpc.so_reuseport"] == 1
    for key in (
        "grpc.keepalive_time_ms",
        "grpc.keepalive_timeout_ms",
        "grpc.http2.min_ping_interval_without_data_ms",
        "grpc.max_connection_idle_ms",
    ):
        assert options[key] > 0
    assert options["grpc.max_connection_idle_ms"] > 75_000  # outlives load-balancer idling
    with pytest.raises(ValueError, match="port"):
        GrpcConfig(port=70_000)


async def test_two_servers_share_a_port_like_worker_processes() -> None:
    async with serving() as first:
        cfg = GrpcConfig(host="127.0.0.1", port=first.server.port)
        second = create_grpc_server(first.table, service=SERVICE, readiness=Readiness(), cfg=cfg)
        async with second:
            assert second.port == first.server.port


async def test_one_ms_deadline_is_deadline_exceeded_and_the_flow_is_cancelled() -> None:
    """1 ms runs out before the flow reaches the model: it is cancelled, never completed."""
    async with serving(offline=OfflineModelConfig(first_chunk_delay_ms=200)) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.TellJoke(pb.JokeRequest(), timeout=0.001)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.sleep(0.5)  # the model would have answered by now
        assert h.model.completed_calls == 0


async def test_deadline_on_a_slow_call_cancels_the_model_call() -> None:
    async with serving(offline=OfflineModelConfig(first_chunk_delay_ms=2000)) as h:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.TellJoke(pb.JokeRequest(), timeout=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 1.5
        await wait_for(lambda: h.model.cancelled_calls == 1)
        assert h.model.completed_calls == 0


async def test_deadline_on_a_stream_cancels_the_model_call() -> None:
    async with serving(offline=OfflineModelConfig(chunk_delay_ms=2000)) as h:
        call = h.stub.TellStory(pb.StoryRequest(), timeout=1.0)
        assert (await call.read()).text  # the first chunk comes at once, the next one never
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await finish(call)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await wait_for(lambda: h.model.cancelled_calls == 1)


async def test_client_cancel_cancels_the_flow_and_the_model_call() -> None:
    async with serving(offline=OfflineModelConfig(chunk_delay_ms=5000)) as h:
        call = h.stub.TellJokeStream(pb.JokeRequest())
        await call.read()  # the first chunk; the model now sleeps before the next one
        call.cancel()
        await wait_for(lambda: h.model.cancelled_calls == 1)
        assert h.model.completed_calls == 0


async def test_message_over_max_receive_bytes_is_resource_exhausted() -> None:
    async with serving(max_receive_bytes=1024) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.TellJoke(pb.JokeRequest(name="x" * 2000))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        ok = await h.stub.TellJoke(pb.JokeRequest(name="x" * 100))  # under the limit: fine
        assert ok.joke


async def test_health_reflects_readiness_while_running() -> None:
    ready = False

    async def check() -> bool:
        return ready

    readiness = Readiness()
    readiness.add_check("model", check)
    async with serving(readiness=readiness, health_poll_interval=0.05) as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        for service in ("", SERVICE.full_name):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == NOT_SERVING
        ready = True
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE.full_name))
        statuses = [(await watch.read()).status]
        if statuses[-1] != SERVING:
            statuses.append((await watch.read()).status)
        assert statuses[-1] == SERVING
        watch.cancel()


async def test_drain_turns_health_not_serving_and_refuses_new_calls() -> None:
    async with serving() as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING
        started = time.monotonic()
        drain = asyncio.create_task(h.server.drain(5))
        assert (await watch.read()).status == NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.Health(pb.HealthRequest(), timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await drain
        # Nothing in flight but a health watch: the drain does not wait out the grace.
        assert time.monotonic() - started < 2


async def test_drain_lets_an_in_flight_stream_finish_within_grace() -> None:
    async with serving(offline=OfflineModelConfig(chunk_delay_ms=100)) as h:
        call = h.stub.TellStory(pb.StoryRequest())
        chunks = [(await call.read()).text]
        drain = asyncio.create_task(h.server.drain(10))
        chunks += [c.text for c in await finish(call)]
        assert await call.code() == grpc.StatusCode.OK
        assert len(chunks) >= 3
        await asyncio.wait_for(drain, 2)
        assert h.model.completed_calls == 1
        assert h.model.cancelled_calls == 0


async def test_stream_longer_than_grace_ends_with_unavailable() -> None:
    async with serving(offline=OfflineModelConfig(chunk_delay_ms=1000)) as h:
        call = h.stub.TellStory(pb.StoryRequest())
        await call.read()
        started = time.monotonic()
        await h.server.drain(0.3)
        elapsed = time.monotonic() - started
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await finish(call)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (info.value.details() or "")
        assert 0.3 <= elapsed < 2
        await wait_for(lambda: h.model.cancelled_calls == 1)


async def _list_services(channel: grpc.aio.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = stub.ServerReflectionInfo(iter([request]))
    reply = await responses.read()
    responses.cancel()
    return sorted(s.name for s in reply.list_services_response.service)


async def test_reflection_is_absent_without_debug() -> None:
    async with serving(debug=False) as h:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _list_services(h.channel)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_lists_the_services_in_debug() -> None:
    async with serving(debug=True) as h:
        services = await _list_services(h.channel)
    assert services == sorted(
        [SERVICE.full_name, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]
    )


async def test_access_log_has_one_event_covering_the_whole_stream() -> None:
    async with serving(offline=OfflineModelConfig(chunk_delay_ms=50)) as h:
        with structlog.testing.capture_logs() as logs:
            started = time.perf_counter()
            chunks = [c async for c in h.stub.TellStory(pb.StoryRequest())]
            client_ms = (time.perf_counter() - started) * 1000
            with pytest.raises(grpc.aio.AioRpcError):
                await h.stub.TellJoke(pb.JokeRequest(name="x" * 201))
            await wait_for(lambda: sum(e["event"] == "grpc_request" for e in logs) == 2)
    story, joke = [e for e in logs if e["event"] == "grpc_request"]
    assert story["method"] == "/genkit.sample.v1.GenkitService/TellStory"
    assert story["code"] == "OK"
    # The stream's chunks are 50 ms apart: the logged duration covers all of them.
    assert story["duration_ms"] >= 50 * (len(chunks) - 1) * 0.9
    assert story["duration_ms"] <= client_ms + 50
    assert len(story["request_id"]) == 32
    assert joke["code"] == "INVALID_ARGUMENT"
    assert joke["method"] == "/genkit.sample.v1.GenkitService/TellJoke"


async def test_access_log_names_deadline_exceeded() -> None:
    async with serving(offline=OfflineModelConfig(first_chunk_delay_ms=2000)) as h:
        with structlog.testing.capture_logs() as logs:
            with pytest.raises(grpc.aio.AioRpcError):
                await h.stub.PirateChat(pb.ChatRequest(), timeout=0.2)
            await wait_for(lambda: any(e["event"] == "grpc_request" for e in logs))
    (event,) = [e for e in logs if e["event"] == "grpc_request"]
    assert event["code"] == "DEADLINE_EXCEEDED"
    assert 150 <= event["duration_ms"] < 1500


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("req-42.A_b", "req-42.A_b"),
        ("bad id!", None),
        ("x" * 129, None),
        (None, None),
    ],
)
async def test_request_id_is_echoed_in_trailing_metadata_or_replaced(
    sent: str | None, echoed: str | None
) -> None:
    metadata = (("x-request-id", sent),) if sent is not None else ()
    async with serving() as h:
        with structlog.testing.capture_logs() as logs:
            call = h.stub.TellJoke(pb.JokeRequest(), metadata=metadata)
            await call
            trailing = dict(await call.trailing_metadata() or ())
            await wait_for(lambda: any(e["event"] == "grpc_request" for e in logs))
    rid = trailing["x-request-id"]
    if echoed is not None:
        assert rid == echoed
    else:
        assert len(rid) == 32
        assert int(rid, 16) >= 0  # a fresh hex id, not the client's value
    (event,) = [e for e in logs if e["event"] == "grpc_request"]
    assert event["request_id"] == rid


async def test_request_id_is_also_in_the_trailers_of_a_failed_call() -> None:
    async with serving() as h:
        call = h.stub.TellJoke(pb.JokeRequest(name="x" * 201), metadata=(("x-request-id", "r-1"),))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(info.value.trailing_metadata() or ())["x-request-id"] == "r-1"
