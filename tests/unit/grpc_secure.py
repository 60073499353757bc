# SPDX-License-Identifier: Apache-2.0
"""A real grpc.aio server with API keys and/or TLS, and a flow that reports the principal.

Like ``grpc_harness.serving``, but the caller chooses the keyring and the transport, and
TellJoke answers with the principal the flow saw (its ``username``), so tests observe
authentication where the flows do: ``current_principal()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from genkit import Genkit

from endpoints_hello import schemas
from endpoints_hello.app import PROMPTS_DIR
from genkit_endpoints.core.context import current_principal
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.routes import RouteTable
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.grpc.server import GrpcServer, create_grpc_server
from genkit_endpoints.model.config import OfflineModelConfig
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from genkit_endpoints.security.keys import ApiKeyring
from tests.unit.grpc_harness import SERVICE, app_table

ANONYMOUS = "(anonymous)"


def with_principal_echo(ai: Genkit, table: RouteTable) -> RouteTable:
    """TellJoke's route, served by a flow that returns the principal's name as username."""

    @ai.flow(name="echo_principal")
    async def echo_principal(data: schemas.JokeInput) -> schemas.JokeResponse:
        principal = current_principal()
        name = principal.name if principal is not None else ANONYMOUS
        method = principal.method if principal is not None else "-"
        return schemas.JokeResponse(joke=method, username=name)

    return RouteTable.build(
        dataclasses.replace(r, flow=echo_principal) if r.grpc_method == "TellJoke" else r
        for r in table
    )


@dataclass
class Secured:
    server: GrpcServer
    model: OfflineModel
    table: RouteTable

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@contextlib.asynccontextmanager
async def secured(
    *, api_keys: ApiKeyring | None = None, offline: OfflineModelConfig | None = None, **cfg: Any
) -> AsyncIterator[Secured]:
    """Start the app's gRPC service with ``api_keys`` and ``GrpcConfig(**cfg)``."""
    model = OfflineModel(offline)
    ai = Genkit(plugins=[model], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    table = with_principal_echo(ai, app_table(ai))
    config = GrpcConfig(**{"host": "127.0.0.1", "port": 0, **cfg})
    server = create_grpc_server(
        table, service=SERVICE, readiness=Readiness(), cfg=config, api_keys=api_keys
    )
    await server.start()
    try:
        yield Secured(server, model, table)
    finally:
        await server.drain(0)
