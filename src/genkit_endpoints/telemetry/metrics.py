# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics: the service's events as series on an injected registry.

Names follow the OpenTelemetry semantic conventions where one exists, rendered the
Prometheus way (dots to underscores, the unit as a suffix):
``http_server_request_duration_seconds``, ``rpc_server_duration_seconds``,
``gen_ai_client_operation_duration_seconds``, ``gen_ai_client_token_usage``,
``gen_ai_client_operation_time_to_first_chunk_seconds``; label names are the
conventions' attribute names the same way (``http_route``, ``gen_ai_token_type``).
The kit's own policies live under one prefix, ``genkit_endpoints_``.

Several worker processes: ``prometheus_client``'s multiprocess mode. The process that
starts the workers creates a directory for this run and sets ``PROMETHEUS_MULTIPROC_DIR``
(see ``genkit_endpoints.telemetry.multiprocess``) before any worker imports
``prometheus_client``; each worker then writes its values to files there, and a scrape
of any worker reads all of them and returns the sum. Gauges declare how workers combine
(in-flight requests add up, a breaker is reported open if it is open in any worker).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from genkit_endpoints.telemetry.observer import Observer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["HTTP_METHODS", "MULTIPROC_ENV", "OTHER", "PREFIX", "PrometheusMetrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "genkit_endpoints_"
OTHER = "_OTHER"  # the semantic conventions' value for anything outside a known set

# Bucket boundaries the semantic conventions advise, stretched for LLM calls that take
# tens of seconds.
_HTTP_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120,
)  # fmt: skip
_GENAI_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
)  # fmt: skip
# The HTTP methods the semantic conventions name; any other is recorded as OTHER.
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_BREAKER_LEVEL = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
# grpc.StatusCode names in number order (the conventions label calls by the number).
_GRPC_CODE_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)  # fmt: skip
_GRPC_CODES = {name: number for number, name in enumerate(_GRPC_CODE_NAMES)}


class PrometheusMetrics(Observer):
    """Every series the service exports, on ``registry`` (a new one by default).

    ``multiprocess_dir`` (default: ``PROMETHEUS_MULTIPROC_DIR`` when set): scrapes read
    every worker's files there; the variable must have been set before
    ``prometheus_client`` was first imported in this process.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        multiprocess_dir: str | None = None,
    ) -> None:
        from prometheus_client import (  # noqa: PLC0415 - only when metrics are on
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir or os.environ.get(MULTIPROC_ENV) or None
        reg = self.registry

        self._http_duration = Histogram(
            "http_server_request_duration",
            "Duration of HTTP server requests.",
            ("http_request_method", "http_route", "http_response_status_code"),
            unit="seconds",
            buckets=_HTTP_BUCKETS,
            registry=reg,
        )
        self._http_active = Gauge(
            "http_server_active_requests",
            "HTTP server requests in flight.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._rpc_duration = Histogram(
            "rpc_server_duration",
            "Duration of gRPC calls, until the status is sent.",
            ("rpc_system", "rpc_service", "rpc_method", "rpc_grpc_status_code"),
            unit="seconds",
            buckets=_HTTP_BUCKETS,
            registry=reg,
        )
        self._rpc_active = Gauge(
            f"{PREFIX}rpc_active_calls",
            "gRPC calls in flight.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._rate_limit = Counter(
            f"{PREFIX}rate_limit_decisions",
            "Rate-limit decisions: allowed, limited (429), unavailable (503, fail closed).",
            ("transport", "decision"),
            registry=reg,
        )
        self._cache = Counter(
            f"{PREFIX}cache_requests",
            "Flow cache lookups: hit, miss, coalesced (waited for an identical call), bypass.",
            ("flow", "result"),
            registry=reg,
        )
        self._breaker_state = Gauge(
            f"{PREFIX}breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open (the worst over workers).",
            ("breaker",),
            registry=reg,
            multiprocess_mode="livemax",
        )
        self._breaker_transitions = Counter(
            f"{PREFIX}breaker_transitions",
            "Circuit breaker state changes.",
            ("breaker", "from_state", "to_state"),
            registry=reg,
        )
        self._backend_up = Gauge(
            f"{PREFIX}redis_up",
            "1 while the Redis of these features answers, 0 during an outage (any worker).",
            ("features",),
            registry=reg,
            multiprocess_mode="livemin",
        )
        self._backend_outages = Counter(
            f"{PREFIX}redis_outages",
            "Times a Redis was found down (the features fall back as configured).",
            ("features",),
            registry=reg,
        )
        self._streams = Gauge(
            f"{PREFIX}streams_open",
            "Flow streams in progress (SSE and gRPC server streams).",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._draining = Gauge(
            f"{PREFIX}draining",
            "1 once a shutdown signal arrived (readiness is 503, in-flight work finishing).",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self._model_duration = Histogram(
            "gen_ai_client_operation_duration",
            "Duration of model requests (each attempt and each tool-loop turn).",
            ("gen_ai_operation_name", "gen_ai_request_model", "error_type"),
            unit="seconds",
            buckets=_GENAI_BUCKETS,
            registry=reg,
        )
        self._model_ttfc = Histogram(
            "gen_ai_client_operation_time_to_first_chunk",
            "Time from a streamed model request to its first chunk.",
            ("gen_ai_operation_name", "gen_ai_request_model"),
            unit="seconds",
            buckets=_GENAI_BUCKETS,
            registry=reg,
        )
        self._tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per model request, as the model reported them.",
            ("gen_ai_operation_name", "gen_ai_request_model", "gen_ai_token_type"),
            buckets=_TOKEN_BUCKETS,
            registry=reg,
        )
        # The labelled children by series and label values: a dict lookup is much cheaper
        # than ``labels()``, which runs on every request. Bounded like the labels are.
        self._children: dict[tuple[object, ...], Any] = {}
        # Series that exist before the first event, so a dashboard shows 0, not "no data".
        self._draining.set(0)
        self._http_active.set(0)
        self._rpc_active.set(0)
        self._streams.set(0)

    # Exposition

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape body and its content type (OpenMetrics when ``accept`` asks for it)."""
        from prometheus_client.exposition import choose_encoder  # noqa: PLC0415

        encoder, content_type = choose_encoder(accept)
        if self.multiprocess_dir is None:
            return encoder(self.registry), content_type
        from prometheus_client import CollectorRegistry  # noqa: PLC0415
        from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

        # A registry per scrape, as multiprocess mode requires: the collector reads every
        # worker's files at collection time.
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return encoder(merged), content_type

    def declare(
        self,
        *,
        flows: Iterable[str] = (),
        breakers: Iterable[str] = (),
        redis_features: Iterable[str] = (),
    ) -> None:
        """Create the series of known label values at zero (breakers closed, Redis up)."""
        for flow in flows:
            for result in ("hit", "miss", "coalesced", "bypass"):
                self._cache.labels(flow=flow, result=result).inc(0)
        for breaker in breakers:
            self._breaker_state.labels(breaker=breaker).set(0)
        for features in redis_features:
            self._backend_up.labels(features=features).set(1)
            self._backend_outages.labels(features=features).inc(0)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # Observer

    def http_started(self) -> None:
        self._http_active.inc()

    def http_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        self._http_active.dec()
        if method not in HTTP_METHODS:
            method = OTHER  # before the lookup: a client's made-up methods are one series
        self._child(self._http_duration, method, route, str(status)).observe(seconds)

    def rpc_started(self) -> None:
        self._rpc_active.inc()

    def rpc_finished(self, service: str, method: str, code: str, seconds: float) -> None:
        self._rpc_active.dec()
        number = _GRPC_CODES.get(code, _GRPC_CODES["UNKNOWN"])
        self._child(self._rpc_duration, "grpc", service, method, str(number)).observe(seconds)

    def rate_limit(self, transport: str, decision: str) -> None:
        self._child(self._rate_limit, transport, decision).inc()

    def cache_result(self, flow: str, result: str) -> None:
        self._child(self._cache, flow, result).inc()

    def breaker_state(self, breaker: str, state: str) -> None:
        self._child(self._breaker_state, breaker).set(_BREAKER_LEVEL.get(state, 0.0))

    def breaker_transition(self, breaker: str, old: str, new: str) -> None:
        self._child(self._breaker_transitions, breaker, old, new).inc()
        self.breaker_state(breaker, new)

    def backend_state(self, features: str, up: bool) -> None:
        self._child(self._backend_up, features).set(1 if up else 0)
        if not up:
            self._child(self._backend_outages, features).inc()

    def streams(self, delta: int) -> None:
        self._streams.inc(delta)

    def draining(self) -> None:
        self._draining.set(1)

    def model_call(self, model: str, seconds: float, error: str | None) -> None:
        self._child(self._model_duration, "chat", model, error or "").observe(seconds)

    def model_first_chunk(self, model: str, seconds: float) -> None:
        self._child(self._model_ttfc, "chat", model).observe(seconds)

    def model_tokens(self, model: str, input_tokens: int | None, output_tokens: int | None) -> None:
        if input_tokens is not None:
            self._child(self._tokens, "chat", model, "input").observe(input_tokens)
        if output_tokens is not None:
            self._child(self._tokens, "chat", model, "output").observe(output_tokens)
