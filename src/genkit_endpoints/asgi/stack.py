"""The middleware order, in one place (SPEC §1, §4.1).

Outermost first: the request id exists before anything can fail, so every error
response — including the ones produced by middleware — carries it; the error envelope
turns anything that escaped into problem+json; the request timeout is innermost so its
504 passes through both.
"""

from __future__ import annotations

from genkit_endpoints.asgi.errors import ErrorEnvelopeMiddleware
from genkit_endpoints.asgi.request_id import RequestIdMiddleware
from genkit_endpoints.asgi.timeout import TimeoutMiddleware
from genkit_endpoints.asgi.types import ASGIApp


def build_stack(app: ASGIApp, *, request_timeout: float) -> ASGIApp:
    """Wrap a framework app in the kit's middleware."""
    inner: ASGIApp = TimeoutMiddleware(app, request_timeout)
    return RequestIdMiddleware(ErrorEnvelopeMiddleware(inner))
