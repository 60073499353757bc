# SPDX-License-Identifier: Apache-2.0
"""The server span of each request, on the OpenTelemetry API, shown the route template and
never the request itself.

One span per request, the same on every framework and server: named ``POST /translate``
(the method alone when no route matched, as the HTTP semantic conventions say), kind
``SERVER``, with the stable conventions' attributes — ``http.request.method``,
``http.route``, ``url.path`` (the route template: raw paths carry ids and tokens),
``url.scheme``, ``network.protocol.version``, ``server.address`` / ``server.port``,
``client.address`` (after ``ProxyHeadersMiddleware``), ``user_agent.original`` and
``http.response.status_code``; a 5xx marks the span as an error. No query string, no
other request header, no per-message ``send`` / ``receive`` spans. The caller's trace
context is extracted through the global propagator (which ``TRUST_INCOMING_TRACE=false``
replaces with one that extracts nothing), and the global response propagator adds
``traceresponse`` to the response start.

Why not OpenTelemetry's ASGI middleware: for every request, sampled or not, it decodes
all headers once per header it looks up, collects the whole attribute set and computes
its duration metrics; here an unsampled request costs the context extraction and one
non-recording span. ``bench/observability.py`` measures the difference.

Probes (``/health``, ``/ready``) and ``/metrics`` are not traced: a probe every few
seconds per pod would be a trace of its own each time. Only installed with tracing on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.instrumentation.propagators import get_global_response_propagator
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from genkit_endpoints.http.middleware.record import UNMATCHED
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send
from genkit_endpoints.telemetry.metrics import HTTP_METHODS, OTHER

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["UNTRACED_PATHS", "TracingMiddleware"]

UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics"})
TRACER_NAME = "genkit_endpoints.http"
# The headers trace context travels in (W3C trace context and baggage, B3, Jaeger): the
# only ones the propagators are shown.
_CONTEXT_HEADERS = frozenset(
    {b"traceparent", b"tracestate", b"baggage", b"b3", b"x-b3-traceid", b"x-b3-spanid",
     b"x-b3-sampled", b"x-b3-flags", b"x-b3-parentspanid", b"uber-trace-id"}
)  # fmt: skip


class TracingMiddleware:
    """``template`` maps a path to its route template (the access log's function)."""

    def __init__(
        self,
        app: ASGIApp,
        template: Callable[[str], str],
        *,
        tracer_provider: TracerProvider | None = None,
        untraced_paths: Iterable[str] = UNTRACED_PATHS,
    ) -> None:
        self.app = app
        self.template = template
        self.untraced = frozenset(untraced_paths)
        self.tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.untraced:
            await self.app(scope, receive, send)
            return
        carrier: dict[str, str] = {}
        user_agent = None
        for name, value in scope["headers"]:
            if name in _CONTEXT_HEADERS:
                carrier[name.decode("latin-1")] = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        method = scope["method"]
        route = self.template(scope["path"])
        attributes: dict[str, Any] = {
            "http.request.method": method if method in HTTP_METHODS else OTHER,
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if method not in HTTP_METHODS:
            attributes["http.request.method_original"] = method
        if route == UNMATCHED:
            name = attributes["http.request.method"]
            attributes["url.path"] = UNMATCHED
        else:
            name = f"{attributes['http.request.method']} {route}"
            attributes["http.route"] = attributes["url.path"] = route
        if server := scope.get("server"):
            attributes["server.address"], attributes["server.port"] = server[0], server[1]
        if client := scope.get("client"):
            attributes["client.address"] = client[0]
        if user_agent is not None:
            attributes["user_agent.original"] = user_agent
        with self.tracer.start_as_current_span(
            name,
            context=extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:
            response_headers = get_global_response_propagator()  # type: ignore[no-untyped-call]

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:  # a 4xx is the client's doing, not a failed span
                        span.set_status(Status(StatusCode.ERROR))
                        span.set_attribute("error.type", str(status))
                    if response_headers is not None:
                        response_headers.inject(message)
                await send(message)

            await self.app(scope, receive, traced_send)
