# SPDX-License-Identifier: Apache-2.0
"""The audit log on gRPC: one line per RPC from the logging interceptor, over a real
``grpc.aio`` server with API keys, a rate limit, the flow cache and the offline model."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from genkit import Genkit

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.routes import RunContext
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.grpc.server import create_grpc_server
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from genkit_endpoints.policies.cache import CacheConfig, FlowCache
from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.telemetry.audit import AuditLog
from tests.support.image_server import offline_fetcher
from tests.unit.grpc_harness import SERVICE, wait_for

pytestmark = pytest.mark.timeout(30)

KEYS = {"alice": "alice-key-0123456789abcdef", "bob": "bob-key-fedcba9876543210"}
PREFIX = f"/{SERVICE.full_name}/"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Audited:
    stub: pb_grpc.GenkitServiceStub
    channel: grpc.aio.Channel
    buffer: io.BytesIO

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]

    async def settled(self, count: int) -> list[dict[str, Any]]:
        """The lines once ``count`` are written (the status leaves with the last one)."""
        await wait_for(lambda: len(self.lines()) >= count)
        return self.lines()


@contextlib.asynccontextmanager
async def audited(rates: str = "2/minute") -> AsyncIterator[Audited]:
    ai = Genkit(plugins=[OfflineModel()], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    buffer = io.BytesIO()
    # Named like the service names it: the model the audit line reports.
    llm = ModelClient(ai, ModelCallPolicyConfig(), model=OFFLINE_MODEL)
    server = create_grpc_server(
        build_routes(ai, llm, offline_fetcher()),
        service=SERVICE,
        readiness=Readiness(),
        cfg=GrpcConfig(host="127.0.0.1", port=0),
        api_keys=ApiKeyring.parse(",".join(f"{n}:{k}" for n, k in KEYS.items())),
        rate_limiter=RateLimiter(RateLimitConfig(rates=rates)),
        run=RunContext(cache=FlowCache(CacheConfig())),
        audit=AuditLog(buffer, clock=lambda: NOW),
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Audited(pb_grpc.GenkitServiceStub(channel), channel, buffer)
    finally:
        await channel.close()
        await server.drain(0)


def pick(line: dict[str, Any], *keys: str) -> tuple[Any, ...]:
    return tuple(line[key] for key in keys)


def as_(name: str | None, rid: str) -> tuple[tuple[str, str], ...]:
    pairs = [("x-request-id", rid)]
    if name is not None:
        pairs.append(("x-api-key", KEYS[name]))
    return tuple(pairs)


async def test_each_rpc_is_one_line_with_its_outcome() -> None:
    translate = pb.TranslateRequest(text="The lighthouse at dawn", target_language="French")
    async with audited() as h:
        await h.stub.TranslateText(translate, metadata=as_("alice", "miss"))
        await h.stub.TranslateText(translate, metadata=as_("alice", "hit"))
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await h.stub.TranslateText(translate, metadata=as_("alice", "limited"))
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await h.stub.TellJoke(pb.JokeRequest(), metadata=as_(None, "anonymous"))
        story = h.stub.TellStory(pb.StoryRequest(topic="owls"), metadata=as_("bob", "story"))
        chunks = [chunk async for chunk in story]
        await h.stub.Health(pb.HealthRequest(), metadata=as_(None, "health"))
        lines = await h.settled(6)
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert chunks
    by_id = {line["request_id"]: line for line in lines}
    assert len(lines) == len(by_id) == 6  # one line per RPC
    miss = by_id["miss"]
    assert miss["time"] == "2025-01-02T03:04:05.000+00:00"
    assert {k: miss[k] for k in ("event", "transport", "method", "route", "status")} == {
        "event": "audit",
        "transport": "grpc",
        "method": "POST",
        "route": PREFIX + "TranslateText",
        "status": 0,
    }
    assert pick(miss, "grpc_code", "principal", "client_ip") == ("OK", "alice", "127.0.0.1")
    assert pick(miss, "flow", "cache", "rate_limit") == ("translate_text", "miss", "allowed")
    assert miss["model"] == OFFLINE_MODEL
    assert miss["input_tokens"] > 0
    assert miss["output_tokens"] > 0
    assert isinstance(miss["duration_ms"], float)
    assert pick(by_id["hit"], "cache", "model", "input_tokens", "status") == ("hit", None, None, 0)
    refused = by_id["limited"]
    assert (refused["status"], refused["grpc_code"], refused["rate_limit"]) == (
        8,
        "RESOURCE_EXHAUSTED",
        "limited",
    )
    assert (refused["flow"], refused["principal"]) == (None, "alice")
    nobody = by_id["anonymous"]
    assert (nobody["status"], nobody["grpc_code"], nobody["principal"]) == (
        16,
        "UNAUTHENTICATED",
        None,
    )
    streamed = by_id["story"]
    assert (streamed["route"], streamed["flow"], streamed["principal"]) == (
        PREFIX + "TellStory",
        "tell_story",
        "bob",
    )
    assert streamed["model"] == OFFLINE_MODEL
    assert by_id["health"]["route"] == PREFIX + "Health"  # exempt from keys, still audited
    raw = h.buffer.getvalue()
    for secret in (*KEYS.values(), "lighthouse", "owls"):
        assert secret.encode() not in raw


async def test_an_unknown_method_is_audited_without_its_name() -> None:
    async with audited() as h:
        call = h.channel.unary_unary("/evil.Probe/drop-table-users")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(b"", metadata=as_("alice", "probe"))
        (line,) = await h.settled(1)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert (line["route"], line["status"], line["grpc_code"]) == ("_OTHER", 12, "UNIMPLEMENTED")
    assert b"drop-table" not in h.buffer.getvalue()
