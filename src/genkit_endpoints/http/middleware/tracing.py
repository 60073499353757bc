"""The server span of each request: OpenTelemetry's maintained ASGI middleware, shown the
route template instead of the request.

OpenTelemetry's middleware names the span and fills ``url.path`` and ``url.query`` (or,
with the older conventions, ``http.target`` / ``http.url``) from the raw path and query
string, and may capture request headers when the
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*`` variables say so. Raw paths carry ids and
tokens, headers carry API keys. So it is handed a view of the scope: the path is the
route template (``/flows/{name}``, ``<unmatched>`` for anything else, as in the access
log), the query string is empty, and only the headers it needs are left (host,
user agent, content length, and the trace context it extracts — or ignores, see
``genkit_endpoints.telemetry.otel.OutboundOnlyPropagator``). The layers inside get the
real scope. The per-message ``send`` / ``receive`` spans are off: one span per request,
not one per SSE chunk. Probes (``/health``, ``/ready``) and ``/metrics`` are not traced:
a probe every few seconds per pod would be a trace of its own each time.

Only installed with tracing on; the module is imported only then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

from genkit_endpoints.http.middleware.record import UNMATCHED
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["UNTRACED_PATHS", "TracingMiddleware"]

UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics"})
_SHOWN_HEADERS = frozenset(
    {b"host", b"user-agent", b"content-length", b"traceparent", b"tracestate", b"baggage"}
)
# Where the view keeps the real scope, for the layers inside.
_REAL_SCOPE = "genkit_endpoints.scope"


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    # The view's path is already the template.
    route, method = scope["path"], scope.get("method", "HTTP")
    if route == UNMATCHED:
        return method, {}  # no route: the method alone, as the conventions say
    return f"{method} {route}", {"http.route": route}


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
        self.otel = OpenTelemetryMiddleware(
            self._real,
            default_span_details=_span_details,
            tracer_provider=tracer_provider,
            exclude_spans=["receive", "send"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.untraced:
            await self.app(scope, receive, send)
            return
        route = self.template(scope["path"])
        view = dict(scope)
        view.update(
            path=route,
            raw_path=route.encode(),
            query_string=b"",
            headers=[h for h in scope["headers"] if h[0] in _SHOWN_HEADERS],
        )
        view[_REAL_SCOPE] = scope
        await self.otel(view, receive, send)

    async def _real(self, view: Scope, receive: Receive, send: Send) -> None:
        await self.app(view[_REAL_SCOPE], receive, send)
