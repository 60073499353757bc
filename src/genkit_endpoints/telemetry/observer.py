# SPDX-License-Identifier: Apache-2.0
"""The events the service's parts report, as one interface with do-nothing defaults.

The rate limiter, the cache, the breaker, the Redis outage gate, the model client and
both transports call an ``Observer`` they were given when something an operator would
want to count happens. The base class ignores every event, so a part built without one
(a unit test, a library user who wants no metrics) pays one method call and nothing
more. ``genkit_endpoints.telemetry.metrics.PrometheusMetrics`` turns the events into
Prometheus series. Arguments are bounded values only — route templates, flow and
configured model names, status codes — never a raw path, principal, key or address.
"""

from __future__ import annotations

__all__ = ["NO_OBSERVER", "Observer"]


class Observer:
    """Receives the service's events; every method is a no-op here."""

    # HTTP (the REST record middleware)

    def http_started(self) -> None:
        """A request entered the stack (the in-flight gauge goes up)."""

    def http_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """A request ended (response sent, or the client gone: status 499)."""

    # gRPC (the logging interceptor)

    def rpc_started(self) -> None:
        """An RPC began (the in-flight gauge goes up)."""

    def rpc_finished(self, service: str, method: str, code: str, seconds: float) -> None:
        """An RPC ended with the status ``code`` (a ``grpc.StatusCode`` name)."""

    # Policies

    def rate_limit(self, transport: str, decision: str) -> None:
        """The limiter decided: ``allowed``, ``limited`` or ``unavailable`` (fail closed)."""

    def cache_result(self, flow: str, result: str) -> None:
        """The flow cache answered: ``hit``, ``miss``, ``coalesced`` or ``bypass``."""

    def breaker_state(self, breaker: str, state: str) -> None:
        """The breaker is in ``state`` (``closed``, ``half_open``, ``open``) from now on."""

    def breaker_transition(self, breaker: str, old: str, new: str) -> None:
        """The breaker moved from ``old`` to ``new``."""

    def backend_state(self, features: str, up: bool) -> None:
        """The Redis used by ``features`` (comma-joined names) went down or came back."""

    # Streams and the drain

    def streams(self, delta: int) -> None:
        """A flow stream (SSE or a gRPC server stream) opened (+1) or ended (-1)."""

    def draining(self) -> None:
        """The first shutdown signal arrived."""

    # Model calls (one per model request: every attempt and every tool-loop turn)

    def model_call(self, model: str, seconds: float, error: str | None) -> None:
        """A model request ended; ``error`` is the failure's type name, None on success."""

    def model_first_chunk(self, model: str, seconds: float) -> None:
        """A streamed model request produced its first chunk after ``seconds``."""

    def model_tokens(self, model: str, input_tokens: int | None, output_tokens: int | None) -> None:
        """The usage a model reported for one request (None: it reported none)."""


NO_OBSERVER = Observer()
