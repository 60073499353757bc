# SPDX-License-Identifier: Apache-2.0
"""What the service reports and where: the runtime config the telemetry settings produce."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AUDIT_SINKS", "SentryConfig", "TelemetryConfig", "TracingConfig"]

# Named audit sinks; anything else is a file path.
AUDIT_SINKS = ("stdout", "stderr", "off")


@dataclass(frozen=True)
class TracingConfig:
    """OpenTelemetry tracing. Exporter details (endpoint, protocol, headers, sampler) are
    the standard ``OTEL_*`` variables, which the SDK reads from the environment."""

    service_name: str = "genkit-endpoints"
    protocol: str = "http/protobuf"  # or "grpc"
    # Continue a caller's W3C ``traceparent``; False starts a new trace at the edge (a
    # service exposed directly to the internet should not let clients pick trace ids).
    trust_incoming: bool = True
    # Record prompt and completion text in spans (masked like logs); off by default.
    capture_content: bool = False


@dataclass(frozen=True)
class SentryConfig:
    dsn: str
    environment: str | None = None
    release: str | None = None


@dataclass(frozen=True)
class TelemetryConfig:
    """``metrics``: serve ``/metrics``; ``metrics_key``: the bearer token it requires
    (None: open, e.g. behind a network policy); ``audit_sink``: stdout, stderr, off or
    a file path; ``tracing`` / ``sentry``: None when off."""

    metrics: bool = True
    metrics_key: str | None = None
    audit_sink: str = "off"
    tracing: TracingConfig | None = None
    sentry: SentryConfig | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
