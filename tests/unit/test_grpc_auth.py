# SPDX-License-Identifier: Apache-2.0
"""API keys on gRPC: the same rules as REST, over metadata, on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from genkit_endpoints.core.context import current_principal
from genkit_endpoints.grpc.auth import AuthInterceptor
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.model.config import OfflineModelConfig
from genkit_endpoints.security import keys as auth
from genkit_endpoints.security.keys import ApiKeyring
from tests.unit.grpc_harness import LEAKS, finish
from tests.unit.grpc_secure import ANONYMOUS, Secured, secured

pytestmark = pytest.mark.timeout(30)

ALICE_KEY = "alice-0123456789abcdef"
BOB_KEY = "bob-fedcba9876543210-xyz"
KEYRING = ApiKeyring.parse(f"alice:{ALICE_KEY},bob:{BOB_KEY}")
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
async def keyed() -> AsyncIterator[tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel]]:
    async with secured(api_keys=KEYRING) as s, grpc.aio.insecure_channel(s.target) as channel:
        yield s, pb_grpc.GenkitServiceStub(channel), channel


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await finish(call)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    details = info.value.details() or ""
    assert not any(leak in details for leak in LEAKS)
    assert ALICE_KEY not in details
    return info.value


@pytest.mark.parametrize(
    "metadata",
    [(("x-api-key", ALICE_KEY),), (("authorization", f"Bearer {ALICE_KEY}"),)],
    ids=["x-api-key", "bearer"],
)
async def test_valid_key_is_served_and_the_flow_sees_its_principal(
    keyed: tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel], metadata: Metadata
) -> None:
    _, stub, _ = keyed
    reply = await stub.TellJoke(pb.JokeRequest(username="mallory"), metadata=metadata)
    assert reply.username == "alice"  # not the body's username
    assert reply.joke == "api_key"
    assert current_principal() is None


async def test_missing_key_is_unauthenticated_before_any_model_call(
    keyed: tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel],
) -> None:
    s, stub, _ = keyed
    err = await refused(stub.TranslateText(pb.TranslateRequest()))
    assert err.details() == auth.MISSING_KEY
    assert s.model.completed_calls == 0


@pytest.mark.parametrize(
    "metadata",
    [
        (("x-api-key", "wrong-key-0123456789"),),
        (("authorization", "Bearer wrong-key-0123456789"),),
        (("x-api-key", "k" * 4000),),
    ],
    ids=["wrong", "wrong-bearer", "oversized"],
)
async def test_wrong_key_is_unauthenticated(
    keyed: tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel], metadata: Metadata
) -> None:
    _, stub, _ = keyed
    err = await refused(stub.TellJoke(pb.JokeRequest(), metadata=metadata))
    assert err.details() == auth.INVALID_KEY


@pytest.mark.parametrize(
    "metadata",
    [
        (("x-api-key", ALICE_KEY), ("x-api-key", ALICE_KEY)),
        (("x-api-key", ALICE_KEY), ("authorization", f"Bearer {BOB_KEY}")),
    ],
    ids=["twice", "both-differ"],
)
async def test_duplicate_or_conflicting_keys_are_unauthenticated(
    keyed: tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel], metadata: Metadata
) -> None:
    _, stub, _ = keyed
    err = await refused(stub.TellJoke(pb.JokeRequest(), metadata=metadata))
    assert err.details() == auth.ONE_KEY_ONLY


async def test_streaming_rpc_needs_a_key_too(
    keyed: tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel],
) -> None:
    s, stub, _ = keyed
    await refused(stub.TellJokeStream(pb.JokeRequest()))
    assert s.model.completed_calls == 0
    chunks = await finish(stub.TellJokeStream(pb.JokeRequest(), metadata=(("x-api-key", BOB_KEY),)))
    assert len(chunks) >= 2


async def test_rejection_keeps_the_request_id_trailer(
    keyed: tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel],
) -> None:
    _, stub, _ = keyed
    call = stub.TellJoke(pb.JokeRequest(), metadata=(("x-request-id", "auth-test-1"),))
    await refused(call)
    assert dict(await call.trailing_metadata() or ()).get("x-request-id") == "auth-test-1"


async def test_health_services_are_exempt(
    keyed: tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel],
) -> None:
    _, stub, channel = keyed
    standard = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    own = await stub.Health(pb.HealthRequest())
    assert standard.status == health_pb2.HealthCheckResponse.SERVING
    assert own.status == "ok"


async def test_access_log_names_the_principal_and_logs_rejections_with_request_id(
    keyed: tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel],
) -> None:
    _, stub, _ = keyed
    with structlog.testing.capture_logs() as logs:
        await stub.TellJoke(pb.JokeRequest(), metadata=(("x-api-key", BOB_KEY),))
        await refused(stub.TellJoke(pb.JokeRequest(), metadata=(("x-request-id", "rej-1"),)))
        await refused(stub.TellJoke(pb.JokeRequest(), metadata=(("x-api-key", ALICE_KEY + "x"),)))
        # The server logs a call once it has ended, which may be just after the client
        # has its status: give the last line a moment (bounded).
        for _ in range(500):
            if sum(e["event"] == "grpc_request" for e in logs) >= 3:
                break
            await asyncio.sleep(0.01)
    events = [e for e in logs if e["event"] == "grpc_request"]
    assert [(e["code"], e["principal"]) for e in events] == [
        ("OK", "bob"),
        ("UNAUTHENTICATED", None),
        ("UNAUTHENTICATED", None),
    ]
    assert events[1]["request_id"] == "rej-1"
    assert ALICE_KEY not in repr(logs)
    assert BOB_KEY not in repr(logs)


async def test_without_a_keyring_calls_are_anonymous() -> None:
    async with secured() as s, grpc.aio.insecure_channel(s.target) as channel:
        stub = pb_grpc.GenkitServiceStub(channel)
        reply = await stub.TellJoke(pb.JokeRequest(), metadata=(("x-api-key", "anything-at-all"),))
    assert reply.username == ANONYMOUS
    assert s.server.auth == "none"


async def test_concurrent_calls_each_see_their_own_principal(
    keyed: tuple[Secured, pb_grpc.GenkitServiceStub, grpc.aio.Channel],
) -> None:
    _, stub, _ = keyed
    keys = [ALICE_KEY, BOB_KEY] * 10
    replies = await asyncio.gather(
        *(stub.TellJoke(pb.JokeRequest(), metadata=(("x-api-key", k),)) for k in keys)
    )
    assert [r.username for r in replies] == ["alice", "bob"] * 10


async def test_metadata_over_the_limit_is_refused_by_grpc() -> None:
    async with (
        secured(api_keys=KEYRING, max_metadata_size=2048) as s,
        grpc.aio.insecure_channel(s.target) as channel,
    ):
        stub = pb_grpc.GenkitServiceStub(channel)
        ok = await stub.TellJoke(pb.JokeRequest(), metadata=(("x-api-key", ALICE_KEY),))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.TellJoke(
                pb.JokeRequest(), metadata=(("x-api-key", ALICE_KEY), ("x-pad", "p" * 4096))
            )
    assert ok.username == "alice"
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_calls_over_the_concurrency_limit_are_refused_at_once() -> None:
    slow = OfflineModelConfig(first_chunk_delay_ms=1500)
    async with (
        secured(offline=slow, max_concurrent_rpcs=1) as s,
        grpc.aio.insecure_channel(s.target) as channel,
    ):
        stub = pb_grpc.GenkitServiceStub(channel)
        first = stub.PirateChat(pb.ChatRequest())
        await asyncio.sleep(0.3)  # the first call holds the only slot
        started = asyncio.get_running_loop().time()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.PirateChat(pb.ChatRequest())
        refused_after = asyncio.get_running_loop().time() - started
        await first
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused_after < 1.0  # not queued behind the first call


def test_auth_interceptor_needs_keys_or_client_certificates() -> None:
    with pytest.raises(ValueError, match="API keys, client certificates"):
        AuthInterceptor(None)


def test_config_passes_metadata_and_concurrency_limits_explicitly() -> None:
    cfg = GrpcConfig(max_metadata_size=4096, max_concurrent_rpcs=7)
    options = dict(cfg.channel_options())
    assert options["grpc.max_metadata_size"] == 4096
    assert options["grpc.absolute_max_metadata_size"] == 4096
    assert GrpcConfig().max_concurrent_rpcs == 1000  # bounded unless asked otherwise
    with pytest.raises(ValueError, match="max_metadata_size"):
        GrpcConfig(max_metadata_size=10)
