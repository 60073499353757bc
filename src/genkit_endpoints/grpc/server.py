# SPDX-License-Identifier: Apache-2.0
"""The gRPC server: flow handlers, standard health, DEBUG-only reflection, graceful drain.

``create_grpc_server`` assembles a ``grpc.aio`` server from the route table and the proto
service descriptor, with the request-id and logging interceptors in front of any others
(only OpenTelemetry's server-span interceptor, with tracing on, comes before them; then
authentication, then the rate limit, then the caller's own), explicit keep-alive,
concurrency, metadata and message-size limits, and ``SO_REUSEPORT`` so several worker
processes can share the port. It speaks TLS when the config names a certificate and
key, mutual TLS when it also names a client CA (every client must present a certificate
from it; its subject becomes the principal), and plaintext only when neither is set.
``GrpcServer`` owns its lifecycle: the standard ``grpc.health.v1.Health`` service
follows the app's ``Readiness`` at once — it subscribes to its changes, so health says
SERVING as soon as ``/ready`` does and NOT_SERVING the moment a drain starts; the drain
refuses new calls, gives the in-flight flow calls the grace period and ends the
stragglers with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.routes import RouteTable, RunContext
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.grpc.fused import policy_interceptor
from genkit_endpoints.grpc.interceptors import StreamsAsGenerators
from genkit_endpoints.grpc.servicer import InflightCalls, build_method_handlers
from genkit_endpoints.grpc.tls import load_server_tls
from genkit_endpoints.policies.ratelimit import RateLimiter
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.telemetry.audit import AuditLog
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["DEPENDENCY_PREFIX", "GrpcServer", "create_grpc_server"]

_log = structlog.get_logger(__name__)
# After the grace period, the calls we cut get this long to send their UNAVAILABLE status
# before gRPC cancels whatever is left (health watches, reflection streams).
_CUT_WAIT = 2.0
_HEALTH_NOTICE = 0.1  # seconds, at least, between NOT_SERVING and cutting health watches
_SERVING: int = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
# Health service names of the readiness components ("dependency/model").
DEPENDENCY_PREFIX = "dependency/"


class GrpcServer:
    """A started-on-demand ``grpc.aio.Server`` with readiness-driven health and a drain."""

    def __init__(
        self,
        server: grpc.aio.Server,
        *,
        port: int,
        health_servicer: health.aio.HealthServicer,
        health_services: Sequence[str],
        readiness: Readiness,
        inflight: InflightCalls,
        cfg: GrpcConfig,
        auth: str = "none",
    ) -> None:
        self.server = server
        self.port = port
        self._health = health_servicer
        self._health_services = tuple(health_services)
        self._readiness = readiness
        self._inflight = inflight
        self._cfg = cfg
        self.auth = auth  # "mtls", "api_key" or "none", for the start-up log
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._health_sync: asyncio.Task[None] | None = None
        # What the health servicer was last told, by service name.
        self._health_status: dict[str, int] = {}
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Set health from readiness, then accept calls; health follows every change."""
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = self._readiness.subscribe(self._readiness_changed)
        # Before start(): the health servicer begins with "" SERVING, which may be false.
        await self._sync_health()
        await self.server.start()
        _log.info(
            "grpc_server_started",
            host=self._cfg.host,
            port=self.port,
            transport=self._cfg.transport,
            authentication=self.auth,
        )

    def _readiness_changed(self) -> None:
        # Runs inside whatever changed readiness, possibly a signal handler: hand the
        # work to the serving loop with the one call that is safe from anywhere.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._sync_health)

    def _sync_health(self) -> asyncio.Task[None]:
        # One task at a time: the servicer's set() can wait behind a watcher's write, and
        # two tasks racing could apply an older status last.
        if self._health_sync is None or self._health_sync.done():
            self._health_sync = asyncio.create_task(self._apply_readiness(), name="grpc-health")
        return self._health_sync

    async def _apply_readiness(self) -> None:
        # Readiness is read afresh each round, so a change made while a set() waited is
        # applied by the next round and the latest state always wins.
        try:
            while (wanted := self._wanted_status()) != self._health_status:
                for name, status in wanted.items():
                    if self._health_status.get(name) != status:
                        # ignored once a drain has started
                        await self._health.set(name, status)
                        self._health_status[name] = status
        except Exception:  # health keeps its last status; the next change tries again
            _log.exception("grpc_health_update_failed")

    def _wanted_status(self) -> dict[str, int]:
        # The served services follow readiness (degraded is still SERVING); each
        # dependency also has a health entry of its own ("dependency/redis:cache"), SERVING
        # only while it is ok, for clients that want the detail /ready shows.
        overall = _SERVING if self._readiness.ready else _NOT_SERVING
        wanted = dict.fromkeys(self._health_services, overall)
        for component, status in self._readiness.components().items():
            wanted[DEPENDENCY_PREFIX + component] = _SERVING if status == "ok" else _NOT_SERVING
        return wanted

    def request_drain(self, grace: float) -> None:
        """Start a drain from a signal handler or another thread (does not wait for it)."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._start_drain, grace)

    def _start_drain(self, grace: float) -> asyncio.Task[None]:
        if self._drain is None:
            self._drain = asyncio.create_task(self._run_drain(grace), name="grpc-drain")
        return self._drain

    async def drain(self, grace: float) -> None:
        """Drain and stop; a second call waits for the first drain (its grace wins).

        Health turns NOT_SERVING at once, new calls are refused, in-flight calls get up to
        ``grace`` seconds, then the remaining flow calls end with UNAVAILABLE.
        """
        await asyncio.shield(self._start_drain(grace))

    async def _run_drain(self, grace: float) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._health_sync is not None:
            self._health_sync.cancel()  # the drain's NOT_SERVING is the last word
        if self._loop is None:  # never started: nothing in flight
            await self._health.enter_graceful_shutdown()
            await self.server.stop(None)
            return
        _log.info("grpc_drain_started", grace=grace, inflight=len(self._inflight))
        # stop() refuses new calls from its first step on. Its own cancel-all (a bare
        # UNAVAILABLE) is only a backstop: our cut below runs first and says why.
        stopping = asyncio.create_task(self.server.stop(grace + _CUT_WAIT))
        await asyncio.sleep(0)  # that first step; then a client told NOT_SERVING that
        # retries at once is refused (UNAVAILABLE), not accepted and cut later.
        await self._health.enter_graceful_shutdown()  # permanent: later sets are ignored
        # Health watches are cut at the end; give their NOT_SERVING message time to leave
        # even when no flow call holds the drain open.
        notice_until = self._loop.time() + min(grace, _HEALTH_NOTICE)
        if not await self._inflight.wait_idle(grace):
            cut = self._inflight.cut()
            _log.warning("grpc_drain_cut_calls", calls=cut, grace=grace)
            await self._inflight.wait_idle(_CUT_WAIT)
        await asyncio.sleep(notice_until - self._loop.time())  # negative: no wait
        # Flow calls are done; what is left never ends by itself (health watches).
        await self.server.stop(None)
        await stopping
        _log.info("grpc_server_stopped")

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.drain(0)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def create_grpc_server(
    table: RouteTable,
    *,
    service: ServiceDescriptor,
    readiness: Readiness,
    cfg: GrpcConfig,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    health_method: str | None = "Health",
    api_keys: ApiKeyring | None = None,
    rate_limiter: RateLimiter | None = None,
    run: RunContext | None = None,
    observer: Observer = NO_OBSERVER,
    audit: AuditLog | None = None,
    tracer_provider: TracerProvider | None = None,
    access_logger: Any = None,
) -> GrpcServer:
    """Build (and bind, not start) the gRPC server for ``service`` from ``table``.

    ``service`` is the descriptor from the generated module, e.g.
    ``genkit_sample_pb2.DESCRIPTOR.services_by_name["GenkitService"]``. ``interceptors``
    run inside the request-id, logging and auth interceptors, so their rejections are
    logged with the request id and they see the principal. With ``api_keys`` or mutual
    TLS every call but the health and reflection ones must authenticate
    (``genkit_endpoints.grpc.auth``). ``rate_limiter`` limits every call but those,
    inside auth so it keys by principal (``genkit_endpoints.grpc.ratelimit``). ``run``
    is the service's run context, for its response cache (None: uncached). ``observer``
    hears every call (metrics); ``audit`` writes one line per call (None: off).
    ``tracer_provider`` (None: no tracing) opens a server span per call, outside every
    other interceptor, so their log lines carry its trace id; health and reflection calls
    are not traced. ``access_logger`` writes the per-call access line (None: a structlog
    logger named ``genkit_endpoints.grpc``). Raises
    ``ValueError`` when an RPC has no route (see ``build_method_handlers``),
    ``TlsConfigError`` (a ``ValueError``) for a bad TLS file and ``RuntimeError`` when
    the address cannot be bound.
    """
    inflight = InflightCalls()
    handlers = build_method_handlers(
        table, service, run=run, inflight=inflight, health_method=health_method
    )
    tls = None
    if cfg.tls_cert is not None and cfg.tls_key is not None:  # GrpcConfig checked the pairing
        tls = load_server_tls(cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca)
    mutual = tls is not None and tls.mutual
    # Request id, access log, auth, then the rate limit (inside auth, so it sees the
    # principal): one interceptor doing what the four separate ones would, in that order.
    ours = policy_interceptor(
        service.full_name,
        health_method=health_method,
        api_keys=api_keys,
        client_certs=mutual,
        rate_limiter=rate_limiter,
        observer=observer,
        audit=audit,
        access_logger=access_logger,
    )
    tracing = (
        [_tracing_interceptor(tracer_provider), StreamsAsGenerators()]
        if tracer_provider is not None
        else []
    )
    server = grpc.aio.server(
        interceptors=[*tracing, ours, *interceptors],
        options=cfg.channel_options(),
        maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    # Registered methods skip the generic lookup per call (what generated stubs do too).
    with contextlib.suppress(AttributeError):  # grpcio < 1.63 lacks it
        server.add_registered_method_handlers(service.full_name, handlers)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if cfg.debug:  # reflection describes the whole API to anyone: DEBUG only
        names = (service.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)

    address = _address(cfg.host, cfg.port)
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        credentials = grpc.ssl_server_credentials(
            [(tls.private_key, tls.cert_chain)],
            root_certificates=tls.client_ca,
            require_client_auth=tls.mutual,
        )
        port = server.add_secure_port(address, credentials)
    if not port:
        raise RuntimeError(f"cannot bind the gRPC server to {address}")
    return GrpcServer(
        server,
        port=port,
        health_servicer=health_servicer,
        health_services=("", service.full_name),
        readiness=readiness,
        inflight=inflight,
        cfg=cfg,
        auth=_auth_mode(mutual=mutual, api_keys=api_keys is not None),
    )


def _tracing_interceptor(provider: TracerProvider) -> grpc.aio.ServerInterceptor:
    # OpenTelemetry's interceptor; it continues the caller's trace through the global
    # propagator, which ignores incoming context when TRUST_INCOMING_TRACE is false.
    from opentelemetry.instrumentation.grpc import aio_server_interceptor  # noqa: PLC0415
    from opentelemetry.instrumentation.grpc.filters import (  # noqa: PLC0415
        any_of,
        negate,
        service_prefix,
    )

    # Health checks come every few seconds from every probe: each would be a trace.
    untraced = any_of(service_prefix("grpc.health."), service_prefix("grpc.reflection."))
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=negate(untraced)
    )
    return interceptor


def _auth_mode(*, mutual: bool, api_keys: bool) -> str:
    # With mutual TLS every call carries a verified certificate, which authenticates it;
    # API keys then only matter on other ports (see genkit_endpoints.grpc.auth).
    if mutual:
        return "mtls"
    return "api_key" if api_keys else "none"
