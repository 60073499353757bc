# SPDX-License-Identifier: Apache-2.0
"""Production serving for Genkit flows: REST + SSE and gRPC endpoints with policies.

The public API: everything an app, a deployment or an embedding needs is importable from
here, and only what is listed in ``__all__`` is supported across releases (submodules
are the kit's own layout and may move). Importing this package is cheap and has no side
effects: each name is imported from its module on first use, so ``import
genkit_endpoints`` (or a CLI's ``--help``) does not import Genkit.

Serve your own flows::

    from genkit_endpoints import App, FlowRoute, serve

    app = App(name="my-service", routes=lambda ctx: [FlowRoute(...), ...])
    if __name__ == "__main__":
        serve(app)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genkit_endpoints.core.lazy import lazy_exports

if TYPE_CHECKING:
    from genkit_endpoints.core.context import current_principal, current_request_id
    from genkit_endpoints.core.errors import (
        BadRequest,
        EndpointError,
        Forbidden,
        ImageFetchError,
        InternalError,
        InvalidInput,
        InvalidModelOutput,
        NotFound,
        RateLimited,
        ServiceUnavailable,
        Unauthenticated,
        UpstreamError,
        UpstreamRejected,
        UpstreamTimeout,
    )
    from genkit_endpoints.core.health import Readiness
    from genkit_endpoints.core.routes import FlowRoute, RouteTable
    from genkit_endpoints.grpc.config import GrpcConfig
    from genkit_endpoints.grpc.encoding import json_field
    from genkit_endpoints.http.middleware.policy import HttpPolicy
    from genkit_endpoints.http.types import ASGIApp
    from genkit_endpoints.model.client import ModelClient
    from genkit_endpoints.model.config import (
        ModelCallPolicyConfig,
        OfflineModelConfig,
        ProviderConfig,
        ProviderConfigError,
        ProviderPoolConfig,
    )
    from genkit_endpoints.model.prompts import literal
    from genkit_endpoints.model.providers import ModelChoice, choose_model
    from genkit_endpoints.policies.backends import BackendSpec, RedisOptions, parse_backend
    from genkit_endpoints.policies.breaker import Breaker, BreakerConfig
    from genkit_endpoints.policies.cache import CacheConfig
    from genkit_endpoints.policies.ratelimit import RateLimitConfig, RateLimiter
    from genkit_endpoints.policies.redis import RedisConnections
    from genkit_endpoints.security.images import FetchedImage, ImageFetchConfig, ImageFetcher
    from genkit_endpoints.security.keys import ApiKeyring, Principal
    from genkit_endpoints.security.masking import SecretMasker
    from genkit_endpoints.serving.app import App, AppContext, create_service, setup_logging
    from genkit_endpoints.serving.cli import main, parse_settings, serve
    from genkit_endpoints.serving.config import ServerConfig
    from genkit_endpoints.serving.gunicorn import (
        gunicorn_metrics_start,
        gunicorn_metrics_stop,
        gunicorn_metrics_worker_exit,
        gunicorn_worker_class,
    )
    from genkit_endpoints.serving.runners import run
    from genkit_endpoints.serving.service import Service, ServiceConfig, build_service
    from genkit_endpoints.serving.settings import Settings, SettingsGroup, load_settings
    from genkit_endpoints.telemetry.config import TracingConfig
    from genkit_endpoints.telemetry.tracing import Tracing, current_trace_id, setup_tracing

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # Serving an app: describe it, hand it to the CLI.
    "App": "genkit_endpoints.serving.app",
    "AppContext": "genkit_endpoints.serving.app",
    "serve": "genkit_endpoints.serving.cli",
    "main": "genkit_endpoints.serving.cli",
    "create_service": "genkit_endpoints.serving.app",
    "setup_logging": "genkit_endpoints.serving.app",
    "Settings": "genkit_endpoints.serving.settings",
    "SettingsGroup": "genkit_endpoints.serving.settings",
    "load_settings": "genkit_endpoints.serving.settings",
    # Writing flows and their routes.
    "FlowRoute": "genkit_endpoints.core.routes",
    "RouteTable": "genkit_endpoints.core.routes",
    "ModelClient": "genkit_endpoints.model.client",
    "literal": "genkit_endpoints.model.prompts",
    "json_field": "genkit_endpoints.grpc.encoding",
    "fingerprint": "genkit_endpoints.core.versions",
    "current_principal": "genkit_endpoints.core.context",
    "current_request_id": "genkit_endpoints.core.context",
    "current_trace_id": "genkit_endpoints.telemetry.tracing",
    "Principal": "genkit_endpoints.security.keys",
    "ImageFetcher": "genkit_endpoints.security.images",
    "FetchedImage": "genkit_endpoints.security.images",
    "Readiness": "genkit_endpoints.core.health",
    # The errors flows raise (each carries its HTTP status and gRPC code).
    "EndpointError": "genkit_endpoints.core.errors",
    "BadRequest": "genkit_endpoints.core.errors",
    "InvalidInput": "genkit_endpoints.core.errors",
    "Unauthenticated": "genkit_endpoints.core.errors",
    "Forbidden": "genkit_endpoints.core.errors",
    "NotFound": "genkit_endpoints.core.errors",
    "RateLimited": "genkit_endpoints.core.errors",
    "ServiceUnavailable": "genkit_endpoints.core.errors",
    "ImageFetchError": "genkit_endpoints.core.errors",
    "UpstreamError": "genkit_endpoints.core.errors",
    "UpstreamRejected": "genkit_endpoints.core.errors",
    "UpstreamTimeout": "genkit_endpoints.core.errors",
    "InvalidModelOutput": "genkit_endpoints.core.errors",
    "InternalError": "genkit_endpoints.core.errors",
    # Embedding: assemble a service yourself and run it.
    "build_service": "genkit_endpoints.serving.service",
    "Service": "genkit_endpoints.serving.service",
    "ServiceConfig": "genkit_endpoints.serving.service",
    "choose_model": "genkit_endpoints.model.providers",
    "ModelChoice": "genkit_endpoints.model.providers",
    "Breaker": "genkit_endpoints.policies.breaker",
    "RateLimiter": "genkit_endpoints.policies.ratelimit",
    "run": "genkit_endpoints.serving.runners",
    "ASGIApp": "genkit_endpoints.http.types",
    "gunicorn_worker_class": "genkit_endpoints.serving.gunicorn",
    "gunicorn_metrics_start": "genkit_endpoints.serving.gunicorn",
    "gunicorn_metrics_worker_exit": "genkit_endpoints.serving.gunicorn",
    "gunicorn_metrics_stop": "genkit_endpoints.serving.gunicorn",
    "parse_settings": "genkit_endpoints.serving.cli",
    "setup_tracing": "genkit_endpoints.telemetry.tracing",
    "Tracing": "genkit_endpoints.telemetry.tracing",
    # The runtime config objects (what settings produce; deployments and benchmarks).
    "ServerConfig": "genkit_endpoints.serving.config",
    "HttpPolicy": "genkit_endpoints.http.middleware.policy",
    "GrpcConfig": "genkit_endpoints.grpc.config",
    "ApiKeyring": "genkit_endpoints.security.keys",
    "RateLimitConfig": "genkit_endpoints.policies.ratelimit",
    "CacheConfig": "genkit_endpoints.policies.cache",
    "BreakerConfig": "genkit_endpoints.policies.breaker",
    "RedisOptions": "genkit_endpoints.policies.backends",
    "RedisConnections": "genkit_endpoints.policies.redis",
    "BackendSpec": "genkit_endpoints.policies.backends",
    "parse_backend": "genkit_endpoints.policies.backends",
    "ModelCallPolicyConfig": "genkit_endpoints.model.config",
    "ProviderConfig": "genkit_endpoints.model.config",
    "ProviderConfigError": "genkit_endpoints.model.config",
    "ProviderPoolConfig": "genkit_endpoints.model.config",
    "OfflineModelConfig": "genkit_endpoints.model.config",
    "ImageFetchConfig": "genkit_endpoints.security.images",
    "TracingConfig": "genkit_endpoints.telemetry.config",
    # The structlog processor that masks secrets (for apps composing their own logging).
    "SecretMasker": "genkit_endpoints.security.masking",
}

# Spelled out for type checkers (they cannot evaluate ``sorted(_EXPORTS)``); a test
# keeps it equal to the map.
__all__ = [
    "ASGIApp",
    "ApiKeyring",
    "App",
    "AppContext",
    "BackendSpec",
    "BadRequest",
    "Breaker",
    "BreakerConfig",
    "CacheConfig",
    "EndpointError",
    "FetchedImage",
    "FlowRoute",
    "Forbidden",
    "GrpcConfig",
    "HttpPolicy",
    "ImageFetchConfig",
    "ImageFetchError",
    "ImageFetcher",
    "InternalError",
    "InvalidInput",
    "InvalidModelOutput",
    "ModelCallPolicyConfig",
    "ModelChoice",
    "ModelClient",
    "NotFound",
    "OfflineModelConfig",
    "Principal",
    "ProviderConfig",
    "ProviderConfigError",
    "ProviderPoolConfig",
    "RateLimitConfig",
    "RateLimited",
    "RateLimiter",
    "Readiness",
    "RedisConnections",
    "RedisOptions",
    "RouteTable",
    "SecretMasker",
    "ServerConfig",
    "Service",
    "ServiceConfig",
    "ServiceUnavailable",
    "Settings",
    "SettingsGroup",
    "Tracing",
    "TracingConfig",
    "Unauthenticated",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "build_service",
    "choose_model",
    "create_service",
    "current_principal",
    "current_request_id",
    "current_trace_id",
    "fingerprint",
    "gunicorn_metrics_start",
    "gunicorn_metrics_stop",
    "gunicorn_metrics_worker_exit",
    "gunicorn_worker_class",
    "json_field",
    "literal",
    "load_settings",
    "main",
    "parse_backend",
    "parse_settings",
    "run",
    "serve",
    "setup_logging",
    "setup_tracing",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
