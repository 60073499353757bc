# SPDX-License-Identifier: Apache-2.0
"""The assembled stack: its layers in the documented order, non-HTTP scopes left alone."""

from __future__ import annotations

import re
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from genkit_endpoints.grpc.fused import FusedInterceptor
from genkit_endpoints.grpc.interceptors import LoggingInterceptor
from genkit_endpoints.grpc.web import GrpcWebMiddleware
from genkit_endpoints.http.middleware import stack as stack_module
from genkit_endpoints.http.middleware.stack import HttpPolicy, build_stack
from genkit_endpoints.http.types import Message, Receive, Scope, Send
from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.telemetry.config import TracingConfig
from genkit_endpoints.telemetry.metrics import PrometheusMetrics
from genkit_endpoints.telemetry.tracing import Tracing


async def test_non_http_scopes_pass_through_untouched() -> None:
    seen: list[str] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await build_stack(lifespan_app, HttpPolicy(request_timeout=1))(
        {"type": "lifespan"}, receive, send
    )
    assert seen == ["lifespan"]


# The documented layer names, outermost first, and the class each one is.
LAYERS = {
    "proxy headers": "ProxyHeadersMiddleware",
    "tracing": "TracingMiddleware",
    "request id": "RequestIdMiddleware",
    "request record": "RecordMiddleware",
    "security headers": "SecurityHeadersMiddleware",
    "gRPC-Web status": "GrpcWebStatusMiddleware",
    "error envelope": "ErrorEnvelopeMiddleware",
    "/metrics": "MetricsEndpointMiddleware",
    "CORS": "CorsMiddleware",
    "trusted host": "TrustedHostMiddleware",
    "concurrency limit": "ConcurrencyLimitMiddleware",
    "body limit": "BodyLimitMiddleware",
    "gRPC-Web": "GrpcWebMiddleware",
    "API key": "ApiKeyMiddleware",
    "rate limit": "RateLimitMiddleware",
    "request timeout": "TimeoutMiddleware",
    "gzip": "GzipMiddleware",
}
REPO = Path(__file__).resolve().parents[3]


def full_stack() -> list[str]:
    """Class names of every layer, outermost first, with every optional layer switched on."""

    async def framework(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    policy = HttpPolicy(
        trusted_proxies=("10.0.0.0/8",),
        cors_allowed_origins=("https://app.example.com",),
        gzip_min_size=1024,
    )
    app: object = build_stack(
        framework,
        policy,
        api_keys=ApiKeyring.parse("web:k" + "e" * 31),
        rate_limiter=RateLimiter(RateLimitConfig(rates="10/minute")),
        metrics=PrometheusMetrics(),
        # A provider of this test's own: the global one is never touched.
        tracing=Tracing(TracerProvider(), TracingConfig()),
        grpc_web=lambda inner: GrpcWebMiddleware(
            inner, {}, FusedInterceptor(LoggingInterceptor()), max_message_bytes=1024
        ),
    )
    names = []
    for _ in range(len(LAYERS) + 1):  # bounded: a cycle of .app would otherwise never end
        if app is framework:
            return names
        names.append(type(app).__name__)
        app = app.app  # type: ignore[attr-defined]
    raise AssertionError(f"the framework was not reached below {names}")


def documented_order(text: str) -> list[str]:
    """The ``a → b → … → framework`` chain in ``text``, as class names."""
    match = re.search(r"proxy headers →.*?→ framework", text, re.S)
    assert match, "no documented middleware order found"
    steps = [" ".join(step.split()) for step in match.group(0).split("→")][:-1]
    return [LAYERS[step] for step in steps]


def test_the_built_stack_has_the_documented_order_outermost_first() -> None:
    built = full_stack()
    assert built == list(LAYERS.values())
    assert documented_order(stack_module.__doc__ or "") == built


def test_the_security_page_states_the_same_order() -> None:
    assert documented_order((REPO / "docs" / "security.md").read_text()) == full_stack()


def test_the_architecture_doc_lists_the_same_classes_in_order() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    assert re.findall(r"→ (\w+Middleware)", text) == full_stack()
