# SPDX-License-Identifier: Apache-2.0
"""REST and gRPC in one process: one Genkit instance, one drain.

Two workers sharing the gRPC port are checked with the other promises of several
workers, in ``test_metrics_workers``.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from tests.fakes.provider import FakeProvider
from tests.support.server import ServerProcess, run_server

STATUS_NAME = health_pb2.HealthCheckResponse.ServingStatus.Name


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with run_server(tmp_path_factory.mktemp("both")) as server:
        yield server


def test_rest_and_grpc_answer_from_one_process(both: ServerProcess) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{both.grpc_port}") as channel:
        stub = pb_grpc.GenkitServiceStub(channel)
        assert stub.Health(pb.HealthRequest(), timeout=5).status == "ok"
        joke = stub.TellJoke(pb.JokeRequest(name="Tom"), timeout=10)
        review = stub.ReviewCode(pb.CodeReviewRequest(), timeout=10)
        chunks = [c.text for c in stub.TellJokeStream(pb.JokeRequest(), timeout=10)]
        # Health follows readiness: SERVING once the model warm-up finished.
        deadline = time.monotonic() + 10
        while True:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
            if health.status == health_pb2.HealthCheckResponse.SERVING:
                break
            assert time.monotonic() < deadline, "gRPC health never became SERVING"
            time.sleep(0.2)
    assert "Tom" in joke.joke
    assert review.review.startswith('{"summary":')
    assert len(chunks) >= 2
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert httpx.get(both.base_url + "/health").status_code == 200


def test_grpc_health_says_serving_from_the_moment_ready_says_200(tmp_path: Path) -> None:
    """A gRPC load balancer or probe must see the pod ready exactly when REST does.

    The Gemini fake refuses the model listing until both probes said "not ready", so
    readiness turns ready while the gRPC server has long been running.
    """
    with FakeProvider() as fake:
        fake.fail_model_listing(times=1000)
        env = {"GEMINI_API_KEY": "test-key", "GEMINI_BASE_URL": fake.gemini_base_url}
        with (
            run_server(tmp_path, env=env) as server,
            grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel,
        ):
            stub = health_pb2_grpc.HealthStub(channel)

            def grpc_statuses() -> set[str]:
                replies = (
                    stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                    for name in ("", "genkit.sample.v1.GenkitService")
                )
                return {STATUS_NAME(reply.status) for reply in replies}

            def rest_ready() -> bool:
                return httpx.get(server.base_url + "/ready", timeout=5).status_code == 200

            assert not rest_ready()
            assert grpc_statuses() == {"NOT_SERVING"}
            fake.reset()  # the warm-up's next attempt (backoff: 0.5 s, 1 s, ...) succeeds
            deadline = time.monotonic() + 20
            while not rest_ready():
                grpc_statuses()  # either answer is fine while readiness may flip
                assert time.monotonic() < deadline, server.log_text()[-3000:]
                time.sleep(0.02)
            after = []
            for _ in range(25):  # about a second of probes, alternating as a balancer might
                after.append(grpc_statuses())
                assert rest_ready()
                time.sleep(0.03)
    assert after == [{"SERVING"}] * 25, after


def test_reflection_is_off_without_debug(both: ServerProcess) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{both.grpc_port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_no_grpc_flag_serves_rest_only(tmp_path: Path) -> None:
    with run_server(tmp_path, args=["--no-grpc"]) as server:
        assert httpx.get(server.base_url + "/health").status_code == 200
        time.sleep(0.3)
        assert not [e for e in server.log_events() if e.get("event") == "grpc_server_started"]


@pytest.mark.parametrize("server_name", ["uvicorn", "granian", "hypercorn"])
def test_sigterm_drains_rest_stream_and_grpc_stream_then_exits_0(
    tmp_path: Path, server_name: str
) -> None:
    env = {"OFFLINE_FIRST_CHUNK_DELAY": "300", "OFFLINE_CHUNK_DELAY": "200", "SHUTDOWN_GRACE": "10"}
    with run_server(tmp_path, args=["--server", server_name], env=env) as server:
        port = server.grpc_port
        grpc_chunks: list[str] = []
        health_after: list[int] = []

        signalled = threading.Event()

        async def grpc_side(started: threading.Event) -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.GenkitServiceStub(channel)
                call = stub.TellStory(pb.StoryRequest(), timeout=20)
                async for chunk in call:
                    grpc_chunks.append(chunk.text)
                    started.set()
                    if signalled.is_set() and not health_after:
                        # The drain has begun: health must no longer say SERVING.
                        await asyncio.sleep(0.2)
                        check = health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(service=""), timeout=2
                        )
                        try:
                            health_after.append((await check).status)
                        except grpc.aio.AioRpcError as exc:  # refused while draining is fine too
                            health_after.append(-exc.code().value[0])

        started = threading.Event()
        grpc_thread = threading.Thread(target=lambda: asyncio.run(grpc_side(started)))
        grpc_thread.start()
        assert started.wait(10)
        with (
            httpx.Client(base_url=server.base_url, timeout=20) as c,
            c.stream("POST", "/tell-story/stream", json={}) as sse,
        ):
            lines = sse.iter_lines()
            next(ln for ln in lines if ln.startswith("data:"))
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for_log("shutdown_started", timeout=5)
            signalled.set()
            rest = [ln for ln in lines if ln.startswith("data:")]
        grpc_thread.join(20)
        code = server.proc.wait(timeout=20)
        log = server.log_text()
    assert code == 0, log[-3000:]
    assert rest[-1].startswith('data: {"done":true'), rest[-3:]
    assert len(grpc_chunks) >= 3, log[-3000:]
    assert health_after, log[-3000:]
    assert health_after[0] != health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("server_name", ["uvicorn", "granian", "hypercorn"])
def test_streams_longer_than_the_grace_end_with_an_error_not_a_cut(
    tmp_path: Path, server_name: str
) -> None:
    # ~7 chunks, 600 ms apart: longer than the 2 s grace.
    env = {"OFFLINE_FIRST_CHUNK_DELAY": "100", "OFFLINE_CHUNK_DELAY": "600", "SHUTDOWN_GRACE": "2"}
    with run_server(tmp_path, args=["--server", server_name], env=env) as server:
        port = server.grpc_port
        grpc_result: dict[str, object] = {}

        async def grpc_side(started: threading.Event) -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = pb_grpc.GenkitServiceStub(channel).TellStory(pb.StoryRequest(), timeout=30)
                try:
                    async for _ in call:
                        started.set()
                    grpc_result["code"] = "OK"
                except grpc.aio.AioRpcError as exc:
                    grpc_result["code"] = exc.code().name

        started = threading.Event()
        grpc_thread = threading.Thread(target=lambda: asyncio.run(grpc_side(started)))
        grpc_thread.start()
        assert started.wait(10)
        start = time.monotonic()
        with (
            httpx.Client(base_url=server.base_url, timeout=30) as c,
            c.stream("POST", "/tell-story/stream", json={}) as sse,
        ):
            chunks = sse.iter_raw()
            first = next(chunks)
            server.proc.send_signal(signal.SIGTERM)
            body = first + b"".join(chunks)  # must end cleanly: no RemoteProtocolError
        grpc_thread.join(30)
        code = server.proc.wait(timeout=20)
        elapsed = time.monotonic() - start
    frames = [f for f in body.split(b"\n\n") if f]
    assert frames[0].startswith(b'data: {"chunk"')
    assert frames[-1].startswith(b"event: error\ndata: "), frames[-2:]
    assert b'"status":503' in frames[-1]
    assert grpc_result.get("code") == "UNAVAILABLE", grpc_result
    assert code == 0
    assert elapsed < 2 + 6
