# SPDX-License-Identifier: Apache-2.0
"""The OpenTelemetry SDK pieces ``setup_tracing`` installs. Imported only with tracing on:
this module loads the SDK, the exporters and the instrumentations, which a service with
tracing off never does.

* ``SpanScrubber`` stands between the batch processor and the OTLP exporter. Genkit
  records every prompt and completion in full on its spans (``genkit:input`` /
  ``genkit:output`` on flows, models and tools); those are dropped unless content
  capture is on, the action context Genkit adds for its Dev UI (auth, request headers)
  is always dropped, and every string that is exported — attributes, event attributes,
  status messages — passes the ``SecretMasker`` the logs use, so a key seeded anywhere
  (a prompt, an error message, a captured header) leaves as ``***``. It runs on the
  processor's thread, never on a request.
* ``OutboundOnlyPropagator`` is the global propagator when incoming trace context is not
  trusted: it injects into outbound calls as before but extracts nothing, for the ASGI
  middleware and the gRPC interceptor alike (both extract through the global one).
* ``TraceResponseHeader`` adds ``traceresponse`` to each traced HTTP response.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.instrumentation.propagators import ResponsePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from opentelemetry.util.types import Attributes

from genkit_endpoints.compat.opentelemetry import span_with
from genkit_endpoints.security.masking import MASK, SecretMasker

__all__ = [
    "CONTENT_ATTRIBUTES",
    "CONTEXT_ATTRIBUTES",
    "OutboundOnlyPropagator",
    "SpanScrubber",
    "TraceResponseHeader",
    "instrument_clients",
    "otlp_exporter",
]

# Genkit's span attributes holding what was said: the messages into and out of every
# flow, model and tool, a streaming action's first input, what a tool interrupt carried.
CONTENT_ATTRIBUTES = frozenset(
    {
        "genkit:input",
        "genkit:output",
        "genkit:init",
        "genkit:metadata:interrupt",
        "genkit:metadata:resumed",
    }
)
# The action context (auth, request headers) Genkit shows in its Dev UI: never exported.
CONTEXT_ATTRIBUTES = frozenset({"genkit:metadata:context"})


def otlp_exporter(protocol: str) -> SpanExporter:
    """The OTLP exporter for ``protocol``; endpoint, headers, timeout, compression and TLS
    come from the standard ``OTEL_EXPORTER_OTLP_*`` variables, which it reads itself."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def instrument_clients(provider: TracerProvider) -> None:
    """Client spans, with ``traceparent`` sent along, for the service's outbound calls."""
    from opentelemetry.instrumentation import httpx as httpx_instrumentation  # noqa: PLC0415

    # The Gemini SDK and the image fetcher speak httpx, the OpenAI SDK its fork httpx2.
    httpx_instrumentation.HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    httpx2 = getattr(httpx_instrumentation, "HTTPX2ClientInstrumentor", None)
    if httpx2 is not None and importlib.util.find_spec("httpx2") is not None:
        httpx2().instrument(tracer_provider=provider)
    if importlib.util.find_spec("redis") is not None:  # the redis extra
        # Commands are recorded with their arguments replaced by "?": cache entries hold
        # flow output, and keys the principal.
        from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415

        RedisInstrumentor().instrument(tracer_provider=provider)


class SpanScrubber(SpanExporter):
    """Hands ``exporter`` the spans without their content (unless ``capture_content``) and
    with every secret masked (see the module docstring)."""

    def __init__(self, exporter: SpanExporter, masker: SecretMasker, capture_content: bool) -> None:
        self.exporter = exporter
        self.masker = masker
        self.capture_content = capture_content

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([self.scrub(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def scrub(self, span: ReadableSpan) -> ReadableSpan:
        """``span`` as it may leave the process: itself when nothing in it needs to go or
        be masked (most spans), else a copy."""
        attributes = self._attributes(span.attributes)
        events = list(span.events)
        changed = attributes is not None
        for i, event in enumerate(events):
            scrubbed = self._attributes(event.attributes)
            if scrubbed is not None:
                events[i] = Event(event.name, scrubbed, event.timestamp)
                changed = True
        status = span.status
        if status.description:
            masked = self.masker.mask_text(status.description)
            if masked != status.description:
                status = Status(status.status_code, masked)
                changed = True
        if not changed:
            return span
        return span_with(
            span,
            attributes=span.attributes if attributes is None else attributes,
            events=events,
            status=status,
        )

    def _attributes(self, attributes: Attributes) -> dict[str, Any] | None:
        """The attributes as they may leave; None when that is all of them unchanged."""
        if not attributes:
            return None
        out: dict[str, Any] = {}
        changed = False
        for name, value in attributes.items():
            if name in CONTEXT_ATTRIBUTES or (
                name in CONTENT_ATTRIBUTES and not self.capture_content
            ):
                changed = True
                continue
            if self.masker.secret_key(name):  # a captured Authorization header, say
                scrubbed: Any = MASK
            elif isinstance(value, str):
                scrubbed = self.masker.mask_text(value)
            elif isinstance(value, tuple | list) and any(isinstance(v, str) for v in value):
                scrubbed = tuple(self.masker.mask_text(v) if isinstance(v, str) else v
                                 for v in value)  # fmt: skip
            else:
                scrubbed = value
            changed = changed or scrubbed != value
            out[name] = scrubbed
        return out if changed else None


class OutboundOnlyPropagator(TextMapPropagator):
    """Injects as ``inner`` does; extracts nothing.

    With ``TRUST_INCOMING_TRACE=false`` a caller's ``traceparent``, ``tracestate`` and
    ``baggage`` are ignored: every request starts a new trace at the edge, so a client
    can neither choose our trace ids nor attach its calls to someone else's trace, while
    the provider calls made for the request still carry the new trace.
    """

    def __init__(self, inner: TextMapPropagator) -> None:
        self.inner = inner

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        return context if context is not None else get_current()

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        self.inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self.inner.fields


class TraceResponseHeader(ResponsePropagator):
    """``traceresponse: 00-<trace id>-<server span id>-<flags>`` on the response start.

    OpenTelemetry's ``TraceResponsePropagator`` would also add an
    ``Access-Control-Expose-Headers`` line of its own to every response, same-origin ones
    included, next to the one the CORS layer sends, and touch every body message; this
    one sets the single header, and the CORS layer exposes it to allowed origins.
    """

    def inject(self, carrier: CarrierT, context: Context | None = None, setter: Any = None) -> None:
        if not isinstance(carrier, dict) or carrier.get("type") != "http.response.start":
            return
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        value = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
            f"-{int(span_context.trace_flags):02x}"
        )
        # A new list: the app may reuse the one it sent.
        carrier["headers"] = [*carrier.get("headers", ()), (b"traceresponse", value.encode())]
