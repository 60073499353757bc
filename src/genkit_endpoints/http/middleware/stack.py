# SPDX-License-Identifier: Apache-2.0
"""The middleware order, in one place.

Outermost first::

    proxy headers → tracing → request id → request record → security headers → gRPC-Web
    status → error envelope → /metrics → CORS → trusted host → concurrency limit → body
    limit → gRPC-Web → API key → rate limit → request timeout → gzip → framework

Why this order:

* The client's address and scheme are settled first, so every later layer (and the
  log) sees the real client and HSTS sees https from a trusted proxy.
* The server span (tracing on) opens next: it covers every layer that can answer or
  log, so the access line and every line inside the request carry its trace id, and it
  records the real client address. The proxy layer outside it only rewrites the scope.
* The request id exists before anything can answer; the request record (access log,
  metrics, audit log) sits outside every layer that can answer, so it sees the status
  actually sent.
* Security headers wrap the error envelope and every rejecting layer, so 400/401/403/
  408/413/503/504 and the envelope's 500 all carry them.
* ``/metrics`` answers inside the envelope and the security headers but before CORS,
  hosts, limits and keys: a scraper addresses the pod by IP, carries no API key, and must
  see the metrics most when the service is overloaded. It has its own key.
* CORS answers preflights before host, auth and limits: a browser's preflight carries
  no API key. Trusted host before the concurrency slot; the cheap rejections (body size,
  key) before any work; the timeout innermost among the answering layers, disarmed
  once a response starts, so streams are governed by their own deadlines.
* The rate limit sits inside auth: it keys by the principal the API-key layer sets
  (else the client IP the proxy layer settled), and an unauthenticated flood is
  refused by auth without spending anyone's quota or a trip to the limit store.
* gzip is closest to the framework: it sees only route responses, never SSE.
* gRPC-Web calls (only with a gRPC service) are answered inside the body limit, so the
  request id, access line, security headers, CORS, trusted host, concurrency and body
  limits apply to them as to any request; but outside the API-key, rate-limit and
  timeout layers, because the gRPC interceptor the call runs through applies the same
  key check, the same limiter (same keys) and the call's own ``grpc-timeout``, and
  answers in gRPC statuses. The gRPC-Web status layer, just inside the security
  headers, turns the HTTP refusals of the layers outside the call (413, 503, 400, the
  envelope's 500) into the gRPC-Web form a browser's client can read.

Layers with nothing configured are not installed at all (no proxies, no keys, no CORS
origins, no gRPC service) — they cost nothing per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from genkit_endpoints.http.middleware.body_limit import BodyLimitMiddleware
from genkit_endpoints.http.middleware.concurrency import ConcurrencyLimitMiddleware
from genkit_endpoints.http.middleware.cors import CorsMiddleware
from genkit_endpoints.http.middleware.errors import ErrorEnvelopeMiddleware
from genkit_endpoints.http.middleware.gzip import GzipMiddleware
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.proxy import ProxyHeadersMiddleware, TrustedProxies
from genkit_endpoints.http.middleware.record import RecordMiddleware, route_templates
from genkit_endpoints.http.middleware.request_id import RequestIdMiddleware
from genkit_endpoints.http.middleware.security_headers import SecurityHeadersMiddleware
from genkit_endpoints.http.middleware.timeout import TimeoutMiddleware
from genkit_endpoints.http.middleware.trusted_host import TrustedHostMiddleware
from genkit_endpoints.http.types import ASGIApp
from genkit_endpoints.security.addresses import parse_networks
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

if TYPE_CHECKING:
    from genkit_endpoints.policies.ratelimit import RateLimiter
    from genkit_endpoints.security.keys import ApiKeyring
    from genkit_endpoints.telemetry.audit import AuditLog
    from genkit_endpoints.telemetry.metrics import PrometheusMetrics
    from genkit_endpoints.telemetry.tracing import Tracing


def build_stack(
    app: ASGIApp,
    policy: HttpPolicy | None = None,
    *,
    route_template: Callable[[str], str] | None = None,
    api_keys: ApiKeyring | None = None,
    access_logger: Any | None = None,
    rate_limiter: RateLimiter | None = None,
    observer: Observer = NO_OBSERVER,
    audit: AuditLog | None = None,
    metrics: PrometheusMetrics | None = None,
    metrics_key: str | None = None,
    tracing: Tracing | None = None,
    grpc_web: Callable[[ASGIApp], ASGIApp] | None = None,
) -> ASGIApp:
    """Wrap a framework app in the kit's middleware, in the documented order.

    ``route_template`` maps a path to its route template for the access log and the
    metrics (default: every path is unmatched). ``rate_limiter``: None, no rate limiting.
    ``observer`` hears every request; ``audit`` writes its line; ``metrics`` (None: no
    ``/metrics``) is served, behind ``metrics_key`` when one is given. ``tracing`` (None:
    off) opens a server span per request with its provider. ``grpc_web`` (None: off)
    wraps the inner layers in the layer that serves gRPC-Web calls
    (``genkit_endpoints.grpc.web``); CORS then allows and exposes the gRPC-Web headers.
    """
    policy = policy or HttpPolicy()
    route_template = route_template or route_templates(())
    inner: ASGIApp = GzipMiddleware(app, policy.gzip_min_size) if policy.gzip_min_size else app
    inner = TimeoutMiddleware(inner, policy.request_timeout)
    if rate_limiter is not None:
        from genkit_endpoints.http.middleware.ratelimit import RateLimitMiddleware  # noqa: PLC0415

        inner = RateLimitMiddleware(inner, rate_limiter, exempt_paths=policy.exempt_paths)
    if api_keys is not None:
        from genkit_endpoints.http.middleware.auth import ApiKeyMiddleware  # noqa: PLC0415 - only with keys

        inner = ApiKeyMiddleware(inner, api_keys, exempt_paths=policy.exempt_paths)
    if grpc_web is not None:
        inner = grpc_web(inner)
    inner = BodyLimitMiddleware(
        inner, policy.max_body_size, policy.body_read_timeout, policy.body_min_rate
    )
    inner = ConcurrencyLimitMiddleware(
        inner, policy.max_concurrent_requests, exempt_paths=policy.exempt_paths
    )
    inner = TrustedHostMiddleware(inner, policy.trusted_hosts)
    if policy.cors_allowed_origins:
        inner = CorsMiddleware(
            inner, policy.cors_allowed_origins, debug=policy.debug, grpc_web=grpc_web is not None
        )
    if metrics is not None:
        from genkit_endpoints.http.middleware.metrics import (  # noqa: PLC0415 - only with metrics
            MetricsEndpointMiddleware,
        )

        inner = MetricsEndpointMiddleware(inner, metrics, key=metrics_key)
    inner = ErrorEnvelopeMiddleware(inner)
    if grpc_web is not None:
        from genkit_endpoints.http.middleware.grpc_web_status import (  # noqa: PLC0415
            GrpcWebStatusMiddleware,
        )

        inner = GrpcWebStatusMiddleware(inner)
    inner = SecurityHeadersMiddleware(inner, debug=policy.debug, hsts_max_age=policy.hsts_max_age)
    inner = RecordMiddleware(inner, route_template, access_logger, observer=observer, audit=audit)
    inner = RequestIdMiddleware(inner)
    if tracing is not None:
        from genkit_endpoints.http.middleware.tracing import (  # noqa: PLC0415 - only with tracing
            UNTRACED_PATHS,
            TracingMiddleware,
        )

        inner = TracingMiddleware(
            inner,
            route_template,
            tracer_provider=tracing.provider,
            untraced_paths=UNTRACED_PATHS | policy.exempt_paths,
        )
    if policy.trusted_proxies:
        inner = ProxyHeadersMiddleware(
            inner, TrustedProxies(parse_networks(policy.trusted_proxies))
        )
    return inner
