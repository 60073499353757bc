# SPDX-License-Identifier: Apache-2.0
"""Shared harness for the gRPC tests: a real grpc.aio server on 127.0.0.1:0 and a channel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from genkit import Genkit
from grpc_health.v1 import health_pb2

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from genkit_endpoints.core import routes
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.routes import RouteTable, RunContext
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.grpc.server import GrpcServer, create_grpc_server
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig, OfflineModelConfig
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from tests.support.image_server import offline_fetcher

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
    """The app's own route table, on the given Genkit instance."""
    return build_routes(ai, ModelClient(ai, ModelCallPolicyConfig()), offline_fetcher())


@contextlib.asynccontextmanager
async def serving(
    *,
    offline: OfflineModelConfig | None = None,
    readiness: Readiness | None = None,
    patch: Callable[[Genkit, RouteTable], RouteTable] | None = None,
    run: RunContext | None = None,
    tracer_provider: Any = None,
    **cfg: Any,
) -> AsyncIterator[Harness]:
    model = OfflineModel(offline)
    ai = Genkit(plugins=[model], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    table = app_table(ai)
    if patch is not None:
        table = patch(ai, table)
    config = GrpcConfig(**{"host": "127.0.0.1", "port": 0, **cfg})
    server = create_grpc_server(
        table,
        service=SERVICE,
        readiness=readiness or Readiness(),
        cfg=config,
        run=run,
        tracer_provider=tracer_provider,
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
