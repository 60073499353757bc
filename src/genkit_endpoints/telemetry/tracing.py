# SPDX-License-Identifier: Apache-2.0
"""OpenTelemetry tracing: one tracer provider per process, and the ids of the current span.

``setup_tracing`` runs once per serving process (workers build their own service) before
anything opens a span, and only when tracing is configured: with it off, none of the SDK,
the exporters or the instrumentations is imported (``telemetry.otel`` holds everything
that needs them), no thread is started, and the global provider stays OpenTelemetry's
no-op one. When on, it installs:

* the global ``TracerProvider`` — Genkit opens its flow, model and tool spans on the
  global tracer, so they land in the request's trace as children of the server span —
  with the service name as its resource and the sampler the standard
  ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` variables choose;
* one ``BatchSpanProcessor`` (spans leave on its own thread, never on the request path)
  exporting over OTLP http/protobuf or gRPC to the endpoint the standard variables name,
  through ``SpanScrubber``: prompt and completion text dropped unless content capture is
  on, secrets masked by the ``SecretMasker`` the logs use;
* httpx/httpx2 and Redis client instrumentation: the provider requests carry
  ``traceparent``;
* the stable HTTP semantic conventions for the client spans of the instrumentations
  (``http.request.method``, ``url.full``, ``http.response.status_code``: the names the
  server span and the metrics use), unless ``OTEL_SEMCONV_STABILITY_OPT_IN`` says
  otherwise — their default is the older names, and ``http/dup`` doubles every attribute;
* ``traceresponse`` on traced HTTP responses and, with ``TRUST_INCOMING_TRACE=false``, a
  propagator that ignores incoming trace context (REST and gRPC) but still injects it.

The transports add their server spans themselves (``http.middleware.tracing``, the gRPC
server's interceptor) with the provider installed here; ``Tracing.shutdown`` at the end
of the lifespan exports what is still buffered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from opentelemetry import trace

from genkit_endpoints.security.masking import SecretMasker
from genkit_endpoints.telemetry.config import TracingConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["SEMCONV_ENV", "Tracing", "current_span_ids", "current_trace_id", "setup_tracing"]

_log = structlog.get_logger(__name__)

SEMCONV_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
# How long the end of the lifespan waits for the last spans to leave.
_FLUSH_TIMEOUT_MS = 5000

_installed: Tracing | None = None


def current_span_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the active span as lowercase hex, None when none is recording."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def current_trace_id() -> str | None:
    """The active trace's id (hex), None outside a traced request."""
    ids = current_span_ids()
    return ids[0] if ids is not None else None


@dataclass(frozen=True)
class Tracing:
    """Tracing as installed in this process: the provider the transports' server spans
    use, and what the settings asked for."""

    provider: TracerProvider
    config: TracingConfig

    def shutdown(self) -> None:
        """Export what is still buffered (bounded), then stop the exporter thread."""
        self.provider.force_flush(_FLUSH_TIMEOUT_MS)
        self.provider.shutdown()


def setup_tracing(cfg: TracingConfig, *, secrets: Iterable[str] = ()) -> Tracing:
    """Install tracing for this process as ``cfg`` says (see the module docstring).

    ``secrets`` are masked by value in everything exported (the configured keys). Once per
    process: OpenTelemetry's global provider can be set only once, so a second call
    returns the tracing the first one installed.
    """
    global _installed  # noqa: PLW0603 - the process-wide provider, like OpenTelemetry's own
    if _installed is not None:
        return _installed
    # Imported here: nothing of the SDK is loaded while tracing is off.
    from opentelemetry.instrumentation.propagators import (  # noqa: PLC0415
        set_global_response_propagator,
    )
    from opentelemetry.propagate import get_global_textmap, set_global_textmap  # noqa: PLC0415
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    from genkit_endpoints.compat.opentelemetry import require_opentelemetry_sdk  # noqa: PLC0415
    from genkit_endpoints.telemetry.otel import (  # noqa: PLC0415
        OutboundOnlyPropagator,
        SpanScrubber,
        TraceResponseHeader,
        instrument_clients,
        otlp_exporter,
    )

    require_opentelemetry_sdk()
    # Read by the instrumentations once, when the first of them is built (below and in
    # the transports' server-span layers).
    os.environ.setdefault(SEMCONV_ENV, "http")
    processor = BatchSpanProcessor(
        SpanScrubber(otlp_exporter(cfg.protocol), SecretMasker(secrets), cfg.capture_content)
    )
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # Genkit's developer mode installs a provider of its own when it is imported; the
        # global one cannot be replaced, so ours exports through it.
        provider = current
        _log.warning("tracing_uses_existing_provider", reason="a tracer provider was already set")
    else:
        # The SDK reads OTEL_TRACES_SAMPLER(_ARG) and OTEL_RESOURCE_ATTRIBUTES itself.
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: cfg.service_name}))
        trace.set_tracer_provider(provider)
    provider.add_span_processor(processor)
    if not cfg.trust_incoming:
        set_global_textmap(OutboundOnlyPropagator(get_global_textmap()))
    set_global_response_propagator(TraceResponseHeader())  # type: ignore[no-untyped-call]
    instrument_clients(provider)
    _installed = Tracing(provider, cfg)
    _log.info(
        "tracing_enabled",
        service_name=cfg.service_name,
        protocol=cfg.protocol,
        trust_incoming=cfg.trust_incoming,
        capture_content=cfg.capture_content,
    )
    return _installed
