# SPDX-License-Identifier: Apache-2.0
"""The fused interceptor against the chain of separate ones it replaces.

Two real ``grpc.aio`` servers serve the same handlers: one through
``RequestIdInterceptor``, ``LoggingInterceptor``, ``AuthInterceptor`` and
``RateLimitInterceptor`` in that order, one through ``FusedInterceptor``. The same calls
(exempt, authenticated, refused, rate limited, streamed, undecodable, unknown) must give
the same statuses, trailers, answers, access lines, audit lines and metrics on both.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from genkit import Genkit
from prometheus_client import CollectorRegistry

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.grpc.auth import AuthInterceptor
from genkit_endpoints.grpc.fused import FusedInterceptor
from genkit_endpoints.grpc.interceptors import LoggingInterceptor, RequestIdInterceptor
from genkit_endpoints.grpc.ratelimit import RateLimitInterceptor
from genkit_endpoints.grpc.servicer import build_method_handlers
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.serving.logging import JsonAccessLog
from genkit_endpoints.telemetry.audit import AuditLog
from genkit_endpoints.telemetry.metrics import PrometheusMetrics
from tests.unit.grpc_harness import SERVICE, app_table, wait_for

pytestmark = pytest.mark.timeout(30)

KEYS = {"alice": "alice-key-0123456789abcdef", "bob": "bob-key-fedcba9876543210"}
PREFIX = f"/{SERVICE.full_name}/"
HEALTH = PREFIX + "Health"
EXEMPT = (HEALTH,)
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LOGGER = "tests.grpc.fused.access"
GENERATED = re.compile(r"[0-9a-f]{32}")
Metadata = tuple[tuple[str, str], ...]


@dataclass
class Served:
    channel: grpc.aio.Channel
    access: io.BytesIO
    audit: io.BytesIO
    metrics: PrometheusMetrics

    def lines(self, buffer: io.BytesIO) -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]


@contextlib.contextmanager
def access_enabled() -> Iterator[None]:
    logger = logging.getLogger(LOGGER)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)


Build = Callable[[LoggingInterceptor, AuthInterceptor, RateLimitInterceptor], list[Any]]


def chain(
    logs: LoggingInterceptor, auth: AuthInterceptor, limit: RateLimitInterceptor
) -> list[Any]:
    return [RequestIdInterceptor(), logs, auth, limit]


def fused(
    logs: LoggingInterceptor, auth: AuthInterceptor, limit: RateLimitInterceptor
) -> list[Any]:
    return [FusedInterceptor(logs, auth=auth, rate_limit=limit)]


@contextlib.asynccontextmanager
async def served(build: Build, extra: tuple[Any, ...] = ()) -> AsyncIterator[Served]:
    ai = Genkit(plugins=[OfflineModel()], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    handlers = build_method_handlers(app_table(ai), SERVICE)
    access, audit = io.BytesIO(), io.BytesIO()
    metrics = PrometheusMetrics(CollectorRegistry())
    logs = LoggingInterceptor(
        JsonAccessLog(access, LOGGER, stamp=lambda: "2025-01-02T03:04:05Z"),
        observer=metrics,
        audit=AuditLog(audit, clock=lambda: NOW),
    )
    keyring = ApiKeyring.parse(",".join(f"{n}:{k}" for n, k in KEYS.items()))
    auth = AuthInterceptor(keyring, exempt_methods=EXEMPT)
    limiter = RateLimiter(RateLimitConfig(rates="3/minute"), observer=metrics)
    limit = RateLimitInterceptor(limiter, exempt_methods=EXEMPT)
    server = grpc.aio.server(interceptors=[*build(logs, auth, limit), *extra])
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(channel, access, audit, metrics)
    finally:
        await channel.close()
        await server.stop(None)


def key(name: str) -> tuple[str, str]:
    return ("x-api-key", KEYS[name])


def rid(value: str) -> tuple[str, str]:
    return ("x-request-id", value)


def bearer(name: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {KEYS[name]}")


JOKE = pb.JokeRequest(name="Mittens").SerializeToString()
STORY = pb.StoryRequest(topic="owls").SerializeToString()
TELL_JOKE = PREFIX + "TellJoke"
# (method, request bytes, metadata, streaming)
CALLS: list[tuple[str, bytes, Metadata, bool]] = [
    (HEALTH, b"", (rid("health-1"),), False),
    (HEALTH, b"", (), False),  # no id: one is made
    (TELL_JOKE, JOKE, (rid("j1"), key("alice")), False),
    # A malformed id is replaced; the first x-request-id decides.
    (TELL_JOKE, b"", (rid("no spaces"), rid("ok"), key("alice")), False),
    (TELL_JOKE, b"", (rid("anon"),), False),
    (TELL_JOKE, b"", (rid("wrong"), ("x-api-key", "nope-0123456789abcdef")), False),
    (TELL_JOKE, b"", (rid("two"), key("bob"), bearer("alice")), False),
    (TELL_JOKE, b"", (rid("bearer"), bearer("alice")), False),
    (TELL_JOKE, b"", (rid("limited"), key("alice")), False),  # alice's 4th: refused
    (PREFIX + "TellStory", STORY, (rid("story"), key("bob")), True),
    (TELL_JOKE, b"\xff\xff\xff", (rid("garbled"), key("bob")), False),
    ("/evil.Probe/drop", b"", (rid("probe"), key("bob")), False),
]


async def outcome(channel: grpc.aio.Channel, call: tuple[str, bytes, Metadata, bool]) -> Any:
    method, request, metadata, streaming = call
    if streaming:
        stream = channel.unary_stream(method)(request, metadata=metadata)
        replies = [reply async for reply in stream]
        code, details = await stream.code(), await stream.details()
        trailers = await stream.trailing_metadata()
    else:
        unary = channel.unary_unary(method)(request, metadata=metadata)
        try:
            replies = [await unary]
        except grpc.aio.AioRpcError:
            replies = []
        code, details = await unary.code(), await unary.details()
        trailers = await unary.trailing_metadata()
    return code, details, [(k, _id(v) if k == "x-request-id" else v) for k, v in trailers], replies


def _id(value: Any) -> Any:
    return "<made>" if isinstance(value, str) and GENERATED.fullmatch(value) else value


def _plain(line: dict[str, Any]) -> dict[str, Any]:
    # Durations differ from run to run; made ids differ by design.
    line = {k: v for k, v in line.items() if k not in {"duration_ms"}}
    line["request_id"] = _id(line.get("request_id"))
    return line


def _samples(metrics: PrometheusMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        # Durations vary; how many calls each series saw does not.
        if not s.name.endswith(("_sum", "_bucket", "_created"))
    }


async def run_all(build: Build) -> tuple[list[Any], list[Any], list[Any], dict[Any, float]]:
    with access_enabled():
        async with served(build) as s:
            results = [await outcome(s.channel, call) for call in CALLS]
            await wait_for(lambda: len(s.lines(s.audit)) >= len(CALLS))
            access = [_plain(line) for line in s.lines(s.access)]
            audit = [_plain(line) for line in s.lines(s.audit)]
            return results, access, audit, _samples(s.metrics)


async def test_the_fused_interceptor_does_what_the_chain_does() -> None:
    chained, fused_ = await run_all(chain), await run_all(fused)
    results, access, audit, metrics = fused_
    assert results == chained[0]
    assert access == chained[1]
    assert audit == chained[2]
    assert metrics == chained[3]
    # And the calls did what the scenario says, so the comparison is not vacuous.
    codes = [r[0] for r in results]
    assert codes == [
        grpc.StatusCode.OK,
        grpc.StatusCode.OK,
        grpc.StatusCode.OK,
        grpc.StatusCode.OK,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.OK,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
    ]
    ids = [dict(r[2]).get("x-request-id") for r in results]
    assert ids == [
        "health-1", "<made>", "j1", "<made>", "anon", "wrong", "two", "bearer", "limited",
        "story", "garbled", None,
    ]  # fmt: skip
    assert "retry-after" in dict(results[8][2])
    assert [line["principal"] for line in access[:4]] == [None, None, "alice", "alice"]
    assert len(access) == len(audit) == len(CALLS)


async def test_made_ids_are_the_ones_logged_and_sent() -> None:
    with access_enabled():
        async with served(fused) as s:
            call = s.channel.unary_unary(HEALTH)(b"")
            await call
            (sent,) = [v for k, v in await call.trailing_metadata() if k == "x-request-id"]
            await wait_for(lambda: len(s.lines(s.audit)) >= 1)
            (line,) = s.lines(s.access)
            (audited,) = s.lines(s.audit)
    assert GENERATED.fullmatch(sent)
    assert line["request_id"] == audited["request_id"] == sent


class Rebuilding(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Hands out a new handler object on every lookup, as some interceptors do."""

    def __init__(self) -> None:
        self.lookups = 0

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        self.lookups += 1
        if handler is None or handler.unary_unary is None:
            return handler
        behaviour = handler.unary_unary

        def plain(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return behaviour(request, context)  # a plain function returning a coroutine

        return grpc.unary_unary_rpc_method_handler(
            plain,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def test_inner_interceptors_run_on_every_call_and_their_handlers_are_served() -> None:
    inner = Rebuilding()
    with access_enabled():
        async with served(fused, (inner,)) as s:
            for rid in ("a", "b", "c"):
                call = s.channel.unary_unary(PREFIX + "TellJoke")(
                    pb.JokeRequest(name="Tom").SerializeToString(),
                    metadata=(("x-request-id", rid), key("bob")),
                )
                reply = pb.JokeResponse.FromString(await call)
                assert reply.username == "bob"
                assert ("x-request-id", rid) in tuple(await call.trailing_metadata())
            await wait_for(lambda: len(s.lines(s.audit)) >= 3)
            lines = s.lines(s.access)
    assert inner.lookups == 3
    assert [(line["request_id"], line["code"], line["principal"]) for line in lines] == [
        ("a", "OK", "bob"),
        ("b", "OK", "bob"),
        ("c", "OK", "bob"),
    ]
