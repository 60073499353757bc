# SPDX-License-Identifier: Apache-2.0
"""Service assembly: a route table in, one served ASGI application (REST + gRPC) out.

Everything an app needs around its flows lives here, so the app stays "flows + schemas +
config": readiness with the model warm-up, the drain lifecycle (readiness 503, gRPC
health NOT_SERVING, streams ended cleanly before the grace runs out), the gRPC server on
the serving event loop, the framework app and the middleware stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from genkit import Genkit

from genkit_endpoints.core.errors import ServiceUnavailable
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.routes import ActiveStreams, RouteTable, RunContext
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.http.adapters import create_framework_app
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.record import route_templates
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.types import ASGIApp
from genkit_endpoints.model.providers import ModelChoice, WarmUp
from genkit_endpoints.policies.cache import CacheConfig, FlowCache
from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
from genkit_endpoints.policies.redis import RedisConnections
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.serving.lifecycle import Lifecycle
from genkit_endpoints.telemetry.audit import AuditLog
from genkit_endpoints.telemetry.metrics import PrometheusMetrics
from genkit_endpoints.telemetry.multiprocess import worker_stopped
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from google.protobuf.descriptor import ServiceDescriptor

    from genkit_endpoints.grpc.server import GrpcServer
    from genkit_endpoints.telemetry.tracing import Tracing

_log = structlog.get_logger(__name__)


# Routes every adapter serves besides the flows; docs only in DEBUG.
_KIT_PATHS = (
    "/health",
    "/ready",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/schema",
)


class ShuttingDown(ServiceUnavailable):
    default_detail = "The server is shutting down; retry the request."


@dataclass(frozen=True)
class ServiceConfig:
    """How the service is served. ``grpc_service`` is "module:ServiceName" (None: no gRPC)."""

    framework: str = "fastapi"
    title: str = "Genkit endpoints"
    debug: bool = False
    http: HttpPolicy = field(default_factory=HttpPolicy)
    shutdown_grace: float = 25.0
    grpc: GrpcConfig | None = None
    grpc_service: str | None = None
    # gRPC-Web for ``grpc_service`` on the REST port (needs ``grpc_service``, not the
    # native gRPC server); its requests' message limit is the HTTP body limit.
    grpc_web: bool = True
    api_keys: ApiKeyring | None = None  # None: no API-key authentication
    rate_limit: RateLimitConfig | None = None  # None: no rate limiting
    # The access-log loggers (``genkit_endpoints.serving.logging.access_logger``) of REST
    # and gRPC; None: the default.
    access_logger: Any = None
    grpc_access_logger: Any = None
    cache: CacheConfig | None = None  # None: no flow cache
    # Where the features take their Redis connections: one registry for the service, so
    # features on the same Redis share one pool and one outage verdict. Give the app's
    # breaker the same one. None: a registry of this service's own.
    connections: RedisConnections | None = None
    # Objects the app built that hold connections (a shared-state breaker) or queued
    # reports (the Sentry reporter, which flushes): their ``aclose()`` runs, in this
    # order, at the end of the lifespan.
    closing: tuple[Any, ...] = ()
    # Allocations between young garbage collections once serving; None: CPython's 700.
    gc_gen0_threshold: int | None = 50_000
    # The readiness the app's parts already report to (the Redis registry); None: new.
    readiness: Readiness | None = None
    # Served at /metrics (behind ``metrics_key`` when set) and told every event; None: off.
    metrics: PrometheusMetrics | None = None
    metrics_key: str | None = field(default=None, repr=False)
    # One line per request and RPC; None: off. Closed at the end of the lifespan.
    audit: AuditLog | None = None
    # Tracing as ``setup_tracing`` installed it (None: off): a server span per request and
    # RPC; what is still buffered is exported at the end of the lifespan.
    tracing: Tracing | None = None


@dataclass
class Service:
    """The running pieces, for ``main`` and for tests."""

    asgi: ASGIApp
    ai: Genkit
    table: RouteTable
    run: RunContext
    readiness: Readiness
    choice: ModelChoice
    lifecycle: Lifecycle


def build_service(
    ai: Genkit, choice: ModelChoice, table: RouteTable, cfg: ServiceConfig
) -> Service:
    """Wire ``table`` into a served app. No I/O until the server runs the lifespan."""
    readiness = cfg.readiness if cfg.readiness is not None else Readiness()
    observer: Observer = cfg.metrics if cfg.metrics is not None else NO_OBSERVER
    warm = WarmUp(ai, readiness)  # "model" is not ready until the warm-up succeeded
    lifecycle = Lifecycle()
    # First shutdown signal: readiness turns 503 while in-flight work finishes.
    lifecycle.on_drain(readiness.start_draining)
    lifecycle.on_drain(observer.draining)
    # Built here, connected lazily: a Redis client opens its pool at the first command.
    connections = (
        cfg.connections
        if cfg.connections is not None
        else RedisConnections(observer=observer, readiness=readiness)
    )
    cache = (
        FlowCache(cfg.cache, connections=connections, observer=observer)
        if cfg.cache is not None
        else None
    )
    # What the transports share at run time; the table itself stays as the app built it.
    run = RunContext(
        cache=cache,
        json_max_depth=cfg.http.json_max_depth,
        active=ActiveStreams(on_change=observer.streams),
    )
    limiter = (
        RateLimiter(cfg.rate_limit, connections=connections, observer=observer)
        if cfg.rate_limit is not None
        else None
    )
    if cfg.metrics is not None:
        # (A breaker declares its own series when it is built with the metrics.)
        cfg.metrics.declare(
            flows=[r.name for r in table if r.cacheable] if cache is not None else (),
            redis_features=connections.features(),
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        _log_model_choice(choice)
        if threading.current_thread() is threading.main_thread():
            lifecycle.install_signal_handlers()  # after the server installed its own
        # Streams still open when the grace runs out end with an error frame, not a cut.
        lifecycle.before_deadline(cfg.shutdown_grace, lambda: run.active.end_all(ShuttingDown()))
        task = asyncio.create_task(warm.run())
        grpc_server = await _start_grpc(table, run, readiness, cfg, limiter, observer)
        if grpc_server is not None:
            # At the first signal: health NOT_SERVING and no new RPCs, while calls finish.
            lifecycle.on_drain(lambda: grpc_server.request_drain(cfg.shutdown_grace))
        # Everything built so far lives for the whole process: move it out of the
        # collector's way, or full collections walk it on the request path (p99 spikes).
        gc.collect()
        gc.freeze()
        if cfg.gc_gen0_threshold is not None:
            # With many requests in flight (a thousand slow model calls), CPython's default
            # of a young collection every 700 allocations walks their live objects over and
            # over, costing throughput and the latency tail; a larger threshold lets the
            # live set be. ``bench/resilience.py inflight`` measures the difference.
            _, gen1, gen2 = gc.get_threshold()
            gc.set_threshold(cfg.gc_gen0_threshold, gen1, gen2)
        try:
            yield
        finally:
            task.cancel()
            if grpc_server is not None:
                await grpc_server.drain(cfg.shutdown_grace)  # joins a drain in progress
            if limiter is not None:
                await limiter.aclose()
            lifecycle.restore_signal_handlers()
            if cache is not None:
                await cache.aclose()
            for resource in cfg.closing:
                await resource.aclose()
            if cfg.audit is not None:
                cfg.audit.close()
            if cfg.metrics is not None:
                worker_stopped()  # this worker's in-flight gauges leave later scrapes
            if cfg.tracing is not None:
                # Last: the spans of the requests and calls that just finished go too. A
                # thread, as the exporter blocks on the network (bounded by its timeout).
                await asyncio.to_thread(cfg.tracing.shutdown)

    framework_app = create_framework_app(
        cfg.framework,
        table,
        readiness,
        run=run,
        debug=cfg.debug,
        title=cfg.title,
        lifespan=lifespan,
    )
    grpc_web = _grpc_web(table, run, cfg, limiter, observer)
    template = route_templates(
        (*(r.path for r in table), *_KIT_PATHS, *(grpc_web[1] if grpc_web else ())),
        prefixes=(("/flows/", "/flows/{name}"),),
    )
    asgi = build_stack(
        framework_app,
        cfg.http,
        route_template=template,
        api_keys=cfg.api_keys,
        access_logger=cfg.access_logger,
        rate_limiter=limiter,
        observer=observer,
        audit=cfg.audit,
        metrics=cfg.metrics,
        metrics_key=cfg.metrics_key,
        tracing=cfg.tracing,
        grpc_web=grpc_web[0] if grpc_web else None,
    )
    return Service(asgi, ai, table, run, readiness, choice, lifecycle)


def _log_model_choice(choice: ModelChoice) -> None:
    if choice.offline:
        _log.warning(
            "using_offline_model",
            model=choice.model,
            hint="set GEMINI_API_KEY or OPENAI_API_KEY (and MODEL) for a real provider",
        )
    else:
        _log.info("using_model", model=choice.model, provider=choice.provider)


def _service_descriptor(grpc_service: str) -> ServiceDescriptor:
    module_name, _, service_name = grpc_service.partition(":")
    module = importlib.import_module(module_name)
    descriptor: ServiceDescriptor = module.DESCRIPTOR.services_by_name[service_name]
    return descriptor


def _grpc_web(
    table: RouteTable,
    run: RunContext,
    cfg: ServiceConfig,
    limiter: RateLimiter | None,
    observer: Observer,
) -> tuple[Callable[[ASGIApp], ASGIApp], list[str]] | None:
    """The gRPC-Web layer and the paths it serves (route templates), or None when off."""
    if not cfg.grpc_web or cfg.grpc_service is None:
        return None
    from genkit_endpoints.grpc.web import grpc_web_layer  # noqa: PLC0415 - only with gRPC-Web

    service = _service_descriptor(cfg.grpc_service)
    layer = grpc_web_layer(
        table,
        service,
        max_message_bytes=cfg.http.max_body_size,
        run=run,
        api_keys=cfg.api_keys,
        rate_limiter=limiter,
        observer=observer,
        audit=cfg.audit,
        access_logger=cfg.grpc_access_logger,
    )
    return layer, [f"/{service.full_name}/{m.name}" for m in service.methods]


async def _start_grpc(  # noqa: PLR0917 - private, one caller
    table: RouteTable,
    run: RunContext,
    readiness: Readiness,
    cfg: ServiceConfig,
    limiter: RateLimiter | None,
    observer: Observer,
) -> GrpcServer | None:
    """The gRPC server on the serving event loop (grpc.aio binds to the current loop)."""
    if cfg.grpc is None or cfg.grpc_service is None:
        return None
    from genkit_endpoints.grpc.server import create_grpc_server  # noqa: PLC0415 - only with gRPC

    server = create_grpc_server(
        table,
        service=_service_descriptor(cfg.grpc_service),
        readiness=readiness,
        cfg=cfg.grpc,
        api_keys=cfg.api_keys,
        rate_limiter=limiter,
        run=run,
        observer=observer,
        audit=cfg.audit,
        tracer_provider=cfg.tracing.provider if cfg.tracing is not None else None,
        access_logger=cfg.grpc_access_logger,
    )
    await server.start()
    return server
