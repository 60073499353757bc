# SPDX-License-Identifier: Apache-2.0
"""The limiter on the wire: the REST middleware (in-process ASGI, also through the whole
stack) and the gRPC interceptor on a real grpc.aio server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest
from genkit import Genkit
from grpc_health.v1 import health_pb2, health_pb2_grpc

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.grpc.ratelimit import peer_ip
from genkit_endpoints.grpc.server import create_grpc_server
from genkit_endpoints.http.middleware.ratelimit import RateLimitMiddleware
from genkit_endpoints.http.middleware.stack import HttpPolicy, build_stack
from genkit_endpoints.http.types import Receive, Scope, Send
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from genkit_endpoints.policies.backends import parse_backend
from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
from genkit_endpoints.security.keys import ApiKeyring
from tests.support.server import free_port
from tests.unit.asgi_helpers import Captured, call, http_scope
from tests.unit.grpc_harness import SERVICE, app_table
from tests.unit.grpc_secure import with_principal_echo

pytestmark = pytest.mark.timeout(60)

ALICE_KEY = "alice-0123456789abcdef"
BOB_KEY = "bob-fedcba9876543210-xyz"
KEYRING = ApiKeyring.parse(f"alice:{ALICE_KEY},bob:{BOB_KEY}")
RATE_HEADERS = (b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset")


def limiter(rates: str = "2/minute", **kwargs: Any) -> RateLimiter:
    return RateLimiter(RateLimitConfig(rates=rates, **kwargs))


def down_limiter(*, fail_open: bool) -> RateLimiter:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    return limiter(backend=parse_backend(url), fail_open=fail_open)


class Counting:
    """The framework: answers 200 and counts the requests that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def from_ip(ip: str, path: str = "/x", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    scope = http_scope(path, headers=headers or [])
    scope["client"] = (ip, 40000)
    return scope


def assert_rate_limited(sent: Captured, limit: int) -> None:
    assert sent.status == 429
    headers = sent.headers
    assert headers[b"content-type"] == b"application/problem+json"
    assert int(headers[b"retry-after"]) >= 1
    assert headers[b"ratelimit-limit"] == str(limit).encode()
    assert headers[b"ratelimit-remaining"] == b"0"
    assert 1 <= int(headers[b"ratelimit-reset"]) <= 60
    body = orjson.loads(sent.body)
    assert body["status"] == 429
    assert body["type"].endswith(":rate-limited")


# REST


async def test_admitted_responses_carry_the_ratelimit_headers() -> None:
    app = Counting()
    mw = RateLimitMiddleware(app, limiter("2/minute"))
    first = await call(mw, from_ip("10.0.0.1"))
    second = await call(mw, from_ip("10.0.0.1"))
    assert (first.status, second.status) == (200, 200)
    assert first.headers[b"ratelimit-limit"] == b"2"
    assert first.headers[b"ratelimit-remaining"] == b"1"
    assert second.headers[b"ratelimit-remaining"] == b"0"
    assert 1 <= int(first.headers[b"ratelimit-reset"]) <= 60
    assert b"retry-after" not in first.headers


async def test_over_the_limit_is_a_429_problem_and_the_app_never_runs() -> None:
    app = Counting()
    mw = RateLimitMiddleware(app, limiter("2/minute"))
    for _ in range(2):
        await call(mw, from_ip("10.0.0.1"))
    sent = await call(mw, from_ip("10.0.0.1"))
    assert_rate_limited(sent, 2)
    assert app.calls == 2


async def test_the_429_through_the_stack_carries_security_headers_and_request_id() -> None:
    stack = build_stack(Counting(), HttpPolicy(request_timeout=5), rate_limiter=limiter("1/minute"))
    await call(stack, from_ip("10.0.0.1"))
    sent = await call(stack, from_ip("10.0.0.1"))
    assert_rate_limited(sent, 1)
    assert sent.headers[b"x-content-type-options"] == b"nosniff"
    assert b"content-security-policy" in sent.headers
    assert orjson.loads(sent.body)["request_id"] == sent.headers[b"x-request-id"].decode()


async def test_without_auth_each_client_ip_has_its_own_quota() -> None:
    mw = RateLimitMiddleware(Counting(), limiter("1/minute"))
    assert (await call(mw, from_ip("10.0.0.1"))).status == 200
    assert (await call(mw, from_ip("10.0.0.2"))).status == 200
    assert (await call(mw, from_ip("10.0.0.1"))).status == 429
    # A header the client writes is not its identity.
    spoof = [(b"x-forwarded-for", b"10.9.9.9"), (b"x-client-id", b"fresh")]
    assert (await call(mw, from_ip("10.0.0.1", headers=spoof))).status == 429


async def test_with_auth_each_principal_has_its_own_quota_behind_one_ip() -> None:
    stack = build_stack(
        Counting(),
        HttpPolicy(request_timeout=5),
        api_keys=KEYRING,
        rate_limiter=limiter("1/minute"),
    )
    alice = [(b"x-api-key", ALICE_KEY.encode())]
    bob = [(b"x-api-key", BOB_KEY.encode())]
    assert (await call(stack, from_ip("10.0.0.1", headers=alice))).status == 200
    assert (await call(stack, from_ip("10.0.0.1", headers=bob))).status == 200
    assert_rate_limited(await call(stack, from_ip("10.0.0.1", headers=alice)), 1)
    # Unauthenticated floods are refused by auth and spend nobody's quota.
    for _ in range(3):
        assert (await call(stack, from_ip("10.0.0.1"))).status == 401


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_probes_are_exempt_and_spend_nothing(path: str) -> None:
    app = Counting()
    stack = build_stack(app, HttpPolicy(request_timeout=5), rate_limiter=limiter("1/minute"))
    for _ in range(5):
        sent = await call(stack, from_ip("10.0.0.1", path))
        assert sent.status == 200
        assert not any(h in sent.headers for h in RATE_HEADERS)
    assert (await call(stack, from_ip("10.0.0.1"))).status == 200  # quota untouched
    assert (await call(stack, from_ip("10.0.0.1"))).status == 429


async def test_storage_outage_failing_open_still_limits_in_the_process() -> None:
    app = Counting()
    mw = RateLimitMiddleware(app, down_limiter(fail_open=True))
    sent = [await call(mw, from_ip("10.0.0.1")) for _ in range(3)]
    assert [s.status for s in sent] == [200, 200, 429]  # 2/minute, counted here
    assert sent[0].headers[b"ratelimit-limit"] == b"2"
    assert sent[1].headers[b"ratelimit-remaining"] == b"0"
    assert app.calls == 2
    await mw.limiter.aclose()


async def test_storage_outage_failing_closed_is_a_503_problem_with_retry_after() -> None:
    app = Counting()
    mw = RateLimitMiddleware(app, down_limiter(fail_open=False))
    sent = await call(mw, from_ip("10.0.0.1"))
    assert sent.status == 503
    assert sent.headers[b"retry-after"] == b"1"
    assert orjson.loads(sent.body)["status"] == 503
    assert app.calls == 0
    await mw.limiter.aclose()


# gRPC


@contextlib.asynccontextmanager
async def grpc_server(
    rate_limiter: RateLimiter, *, api_keys: ApiKeyring | None = None
) -> AsyncIterator[tuple[pb_grpc.GenkitServiceStub, grpc.aio.Channel]]:
    model = OfflineModel()
    ai = Genkit(plugins=[model], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    table = with_principal_echo(ai, app_table(ai))
    server = create_grpc_server(
        table,
        service=SERVICE,
        readiness=Readiness(),
        cfg=GrpcConfig(host="127.0.0.1", port=0),
        api_keys=api_keys,
        rate_limiter=rate_limiter,
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield pb_grpc.GenkitServiceStub(channel), channel
    finally:
        await server.drain(0)


async def exhausted(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    err = info.value
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(err.trailing_metadata() or ())
    assert int(trailers["retry-after"]) >= 1
    assert "x-request-id" in trailers
    return err


async def test_grpc_over_the_limit_is_resource_exhausted_with_retry_after() -> None:
    async with grpc_server(limiter("2/minute")) as (stub, _):
        for _ in range(2):
            await stub.TellJoke(pb.JokeRequest(username="x"))
        await exhausted(stub.TellJoke(pb.JokeRequest(username="x")))
        # Metadata is the client's to write: it never buys a fresh quota.
        spoof = (("x-forwarded-for", "10.9.9.9"), ("x-client-id", "fresh"))
        await exhausted(stub.TellJoke(pb.JokeRequest(username="x"), metadata=spoof))


async def test_grpc_principals_have_their_own_quota_behind_one_peer() -> None:
    async with grpc_server(limiter("1/minute"), api_keys=KEYRING) as (stub, _):
        alice = (("x-api-key", ALICE_KEY),)
        bob = (("x-api-key", BOB_KEY),)
        assert (await stub.TellJoke(pb.JokeRequest(), metadata=alice)).username == "alice"
        assert (await stub.TellJoke(pb.JokeRequest(), metadata=bob)).username == "bob"
        await exhausted(stub.TellJoke(pb.JokeRequest(), metadata=alice))


async def test_grpc_health_services_are_exempt() -> None:
    async with grpc_server(limiter("1/minute")) as (stub, channel):
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(4):
            await stub.Health(pb.HealthRequest())
            await health.Check(health_pb2.HealthCheckRequest())
        await stub.TellJoke(pb.JokeRequest())  # the one call the quota allows
        await exhausted(stub.TellJoke(pb.JokeRequest()))


async def test_grpc_storage_outage_failing_closed_is_unavailable() -> None:
    rl = down_limiter(fail_open=False)
    async with grpc_server(rl) as (stub, _):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.TellJoke(pb.JokeRequest())
    await rl.aclose()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert dict(info.value.trailing_metadata() or ())["retry-after"] == "1"


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("ipv4:127.0.0.1:5000", "127.0.0.1"),
        ("ipv6:[::1]:5000", "::1"),
        ("unix:/tmp/s.sock", "unix:/tmp/s.sock"),
        ("", "unknown"),
    ],
)
def test_peer_ip_takes_the_address_without_the_port(peer: str, ip: str) -> None:
    assert peer_ip(peer) == ip
