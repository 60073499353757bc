"""Assembly: settings in, a served ASGI application out (``create_app``).

Everything is built here, when called, never at import: the Genkit instance, the model
plugins, the flows and their route table, readiness, the framework app and the
middleware stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from genkit import Genkit

from endpoints_hello.flows import build_routes
from endpoints_hello.settings import Settings
from genkit_endpoints.adapters import create_framework_app
from genkit_endpoints.asgi.stack import build_stack
from genkit_endpoints.asgi.types import ASGIApp
from genkit_endpoints.errors import ServiceUnavailable
from genkit_endpoints.generation import ModelClient
from genkit_endpoints.health import Readiness
from genkit_endpoints.lifecycle import Lifecycle
from genkit_endpoints.providers import ModelChoice, WarmUp, choose_model
from genkit_endpoints.routes import RouteTable

if TYPE_CHECKING:
    from genkit_endpoints.grpc.server import GrpcServer

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
_log = structlog.get_logger(__name__)


@dataclass
class Service:
    """The running pieces, for ``main`` and for tests."""

    asgi: ASGIApp
    ai: Genkit
    table: RouteTable
    readiness: Readiness
    choice: ModelChoice
    lifecycle: Lifecycle


class ShuttingDown(ServiceUnavailable):
    default_detail = "The server is shutting down; retry the request."


def create_service(settings: Settings) -> Service:
    """Build the whole service from settings (no I/O until the server starts it)."""
    choice = choose_model(settings.provider_config())
    ai = Genkit(plugins=list(choice.plugins), model=choice.model, prompt_dir=PROMPTS_DIR)
    table = build_routes(ai, ModelClient(ai, settings.model_call_policy()))
    readiness = Readiness()
    warm = WarmUp(ai)
    readiness.add_check("model", warm.ready)
    lifecycle = Lifecycle()
    # First shutdown signal: readiness turns 503 while in-flight work finishes.
    lifecycle.on_drain(readiness.start_draining)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        if choice.offline:
            _log.warning(
                "using_offline_model",
                model=choice.model,
                hint="set GEMINI_API_KEY or OPENAI_API_KEY (and MODEL) for a real provider",
            )
        else:
            _log.info("using_model", model=choice.model, provider=choice.provider)
        if threading.current_thread() is threading.main_thread():
            lifecycle.install_signal_handlers()  # after the server installed its own
        # Streams still open when the grace runs out end with an error frame, not a cut.
        lifecycle.before_deadline(
            settings.shutdown_grace, lambda: table.active.end_all(ShuttingDown())
        )
        task = asyncio.create_task(warm.run())
        grpc_server = (
            await _start_grpc(settings, table, readiness) if settings.grpc_enabled else None
        )
        if grpc_server is not None:
            # At the first signal: health NOT_SERVING and no new RPCs, while calls finish.
            lifecycle.on_drain(lambda: grpc_server.request_drain(settings.shutdown_grace))
        # Everything built so far lives for the whole process: move it out of the
        # collector's way, or full collections walk it on the request path (p99 spikes).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            task.cancel()
            if grpc_server is not None:
                await grpc_server.drain(settings.shutdown_grace)  # joins a drain in progress
            lifecycle.restore_signal_handlers()

    framework_app = create_framework_app(
        settings.framework,
        table,
        readiness,
        debug=settings.debug,
        title="endpoints-hello",
        lifespan=lifespan,
    )
    asgi = build_stack(framework_app, request_timeout=settings.request_timeout)
    return Service(asgi, ai, table, readiness, choice, lifecycle)


async def _start_grpc(settings: Settings, table: RouteTable, readiness: Readiness) -> GrpcServer:
    """The gRPC service on the serving event loop (grpc.aio binds to the current loop)."""
    from endpoints_hello.generated import genkit_sample_pb2  # noqa: PLC0415 - only with gRPC
    from genkit_endpoints.grpc.server import create_grpc_server  # noqa: PLC0415

    server = create_grpc_server(
        table,
        service=genkit_sample_pb2.DESCRIPTOR.services_by_name["GenkitService"],
        readiness=readiness,
        cfg=settings.grpc_config(),
    )
    await server.start()
    return server


def create_asgi_from_env() -> ASGIApp:
    """ASGI factory for worker processes: settings from the environment ``main`` exported."""
    from endpoints_hello.main import setup_from_env  # noqa: PLC0415 - avoid an import cycle

    return create_service(setup_from_env()).asgi
