# SPDX-License-Identifier: Apache-2.0
"""The gRPC server around the servicer: deadlines and cancellation, message size, health
and drain, reflection only in DEBUG, the access log and the request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.grpc.server import create_grpc_server
from genkit_endpoints.model.config import OfflineModelConfig
from tests.unit.grpc_harness import (
    NOT_SERVING,
    SERVICE,
    SERVING,
    finish,
    serving,
    wait_for,
)

pytestmark = pytest.mark.timeout(30)


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
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.TellJoke(pb.JokeRequest(), timeout=0.3)
        # The client enforces its own deadline; what the server owes it is the cancelled
        # model call, long before the model's 2 s answer would have completed it.
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
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


# A pushed status change reaches a watcher in milliseconds; a second leaves plenty of room
# on a busy machine and still tells it apart from a periodic re-check.
PUSHED_WITHIN = 1.0


async def test_health_turns_serving_as_soon_as_readiness_turns_ready() -> None:
    readiness = Readiness()
    readiness.set_status("model", "failing")
    async with serving(readiness=readiness) as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        for service in ("", SERVICE.full_name):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == NOT_SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE.full_name))
        assert (await watch.read()).status == NOT_SERVING
        readiness.set_status("model", "ok")
        assert (await asyncio.wait_for(watch.read(), PUSHED_WITHIN)).status == SERVING
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == SERVING
        readiness.set_status("model", "failing")  # an outage noticed later: back out at once
        assert (await asyncio.wait_for(watch.read(), PUSHED_WITHIN)).status == NOT_SERVING
        watch.cancel()


async def test_a_degraded_dependency_is_not_serving_while_the_service_still_is() -> None:
    """Clients that want the detail ``/ready`` shows get one health entry per dependency;
    the services themselves follow readiness, which a degraded dependency leaves ready."""
    readiness = Readiness()
    readiness.set_status("model", "ok")
    readiness.set_status("redis:cache", "ok")
    async with serving(readiness=readiness) as h:
        health = health_pb2_grpc.HealthStub(h.channel)

        async def status(service: str) -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            return int(reply.status)

        watch = health.Watch(health_pb2.HealthCheckRequest(service="dependency/redis:cache"))
        assert (await watch.read()).status == SERVING
        readiness.set_status("redis:cache", "degraded")
        assert (await asyncio.wait_for(watch.read(), PUSHED_WITHIN)).status == NOT_SERVING
        assert await status("") == SERVING
        assert await status(SERVICE.full_name) == SERVING
        assert await status("dependency/model") == SERVING
        overall = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await overall.read()).status == SERVING
        readiness.set_status("redis:cache", "failing")  # the service cannot do without it
        assert (await asyncio.wait_for(overall.read(), PUSHED_WITHIN)).status == NOT_SERVING
        overall.cancel()
        readiness.set_status("redis:cache", "ok")
        assert (await asyncio.wait_for(watch.read(), PUSHED_WITHIN)).status == SERVING
        assert await status("") == SERVING
        watch.cancel()


async def test_health_turns_not_serving_as_soon_as_readiness_starts_draining() -> None:
    """The first shutdown signal drains readiness before the server's own drain runs."""
    readiness = Readiness()
    async with serving(readiness=readiness) as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING
        readiness.start_draining()
        assert (await asyncio.wait_for(watch.read(), PUSHED_WITHIN)).status == NOT_SERVING
        reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE.full_name))
        assert reply.status == NOT_SERVING
        watch.cancel()


async def test_the_last_of_quick_readiness_flips_wins() -> None:
    readiness = Readiness()
    async with serving(readiness=readiness) as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING
        for _ in range(5):
            readiness.set_status("model", "failing")
            readiness.set_status("model", "ok")
        readiness.set_status("model", "failing")
        # A watch may skip intermediate statuses, never the last one.
        assert (await asyncio.wait_for(_settled(watch), 2 * PUSHED_WITHIN)) == NOT_SERVING
        for service in ("", SERVICE.full_name):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == NOT_SERVING
        watch.cancel()


async def _settled(watch: Any) -> int:
    """Read a watch until it goes quiet for a moment; the last status it sent."""
    status = (await watch.read()).status
    while True:
        try:
            status = (await asyncio.wait_for(watch.read(), 0.3)).status
        except TimeoutError:
            return status


async def test_readiness_turning_ready_during_a_drain_leaves_health_not_serving() -> None:
    readiness = Readiness()
    readiness.set_status("model", "ok")
    async with serving(readiness=readiness, offline=OfflineModelConfig(chunk_delay_ms=150)) as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING
        story = h.stub.TellStory(pb.StoryRequest())  # holds the drain open for a while
        await story.read()
        drain = asyncio.create_task(h.server.drain(10))
        assert (await watch.read()).status == NOT_SERVING
        readiness.set_status("model", "failing")
        readiness.set_status("model", "ok")
        await finish(story)
        await drain
        # Whatever the watch still got before the server closed it: never SERVING.
        later = []
        with contextlib.suppress(grpc.aio.AioRpcError):
            while (reply := await watch.read()) is not grpc.aio.EOF:
                later.append(reply.status)
        assert SERVING not in later


async def test_drain_turns_health_not_serving_and_refuses_new_calls() -> None:
    async with serving() as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING
        drain = asyncio.create_task(h.server.drain(120))
        assert (await watch.read()).status == NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.Health(pb.HealthRequest(), timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        # Nothing in flight but a health watch: the drain ends long before its grace
        # (a bound far from both, so a busy machine cannot make it fail).
        await asyncio.wait_for(drain, 20)


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
    # Chunks a minute apart: the stream would outlast any bound below by far.
    async with serving(offline=OfflineModelConfig(chunk_delay_ms=60_000)) as h:
        call = h.stub.TellStory(pb.StoryRequest())
        await call.read()
        started = time.monotonic()
        await asyncio.wait_for(h.server.drain(0.3), 20)
        elapsed = time.monotonic() - started
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await finish(call)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (info.value.details() or "")
        assert elapsed >= 0.3  # the grace was given, then the stream was cut
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
