# SPDX-License-Identifier: Apache-2.0
"""Settings of what the service reports: metrics, tracing, the audit log, Sentry.

The OpenTelemetry names are the standard ``OTEL_*`` variables, so an operator's usual
configuration works unchanged; the ones read here are also accepted from the env files
and the command line, and are handed to the SDK through the environment (it reads the
rest — sampler, headers, resource attributes — from there itself).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from genkit_endpoints.serving.settings.base import OptionalText, SettingsGroup, secret
from genkit_endpoints.telemetry.config import (
    AUDIT_SINKS,
    SentryConfig,
    TelemetryConfig,
    TracingConfig,
)

__all__ = ["TelemetrySettings"]

# The settings that are standard OpenTelemetry variables, exported for the SDK.
_OTEL_NAMES = (
    "otel_exporter_otlp_endpoint",
    "otel_exporter_otlp_traces_endpoint",
    "otel_exporter_otlp_protocol",
    "otel_exporter_otlp_headers",
    "otel_service_name",
    "otel_traces_sampler",
    "otel_traces_sampler_arg",
)


class TelemetrySettings(SettingsGroup):
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus /metrics.")
    metrics_key: SecretStr | None = Field(
        default=None, description="Bearer token /metrics requires (never an API key)."
    )
    audit_log: str = Field(default="off", description="stdout | stderr | off | a file path.")
    otel_sdk_disabled: bool = Field(
        default=False, description="No tracing and no Sentry: nothing is exported."
    )
    otel_exporter_otlp_endpoint: OptionalText = Field(
        default=None, description="OTLP collector; tracing is on when an endpoint is set."
    )
    otel_exporter_otlp_traces_endpoint: OptionalText = None
    otel_exporter_otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    otel_exporter_otlp_headers: SecretStr | None = None
    otel_service_name: OptionalText = None
    otel_traces_sampler: OptionalText = None
    otel_traces_sampler_arg: OptionalText = None
    otel_instrumentation_genai_capture_message_content: bool = Field(
        default=False, description="Record prompt and completion text in spans (masked)."
    )
    trust_incoming_trace: bool = Field(
        default=True, description="Continue a caller's traceparent; false: new trace at the edge."
    )
    sentry_dsn: SecretStr | None = Field(default=None, description="Report 500s to Sentry.")
    sentry_environment: OptionalText = None
    sentry_release: OptionalText = None

    @field_validator("metrics_key", "sentry_dsn", "otel_exporter_otlp_headers", mode="before")
    @classmethod
    def _blank_secret(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("audit_log")
    @classmethod
    def _audit_sink(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError(f"must be one of {', '.join(AUDIT_SINKS)} or a file path")
        return value.lower() if value.lower() in AUDIT_SINKS else value

    @field_validator("metrics_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @property
    def tracing_enabled(self) -> bool:
        endpoint = self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint
        return not self.otel_sdk_disabled and endpoint is not None

    def config(self, service_name: str) -> TelemetryConfig:
        tracing = (
            TracingConfig(
                service_name=self.otel_service_name or service_name,
                protocol=self.otel_exporter_otlp_protocol,
                trust_incoming=self.trust_incoming_trace,
                capture_content=self.otel_instrumentation_genai_capture_message_content,
            )
            if self.tracing_enabled
            else None
        )
        dsn = secret(self.sentry_dsn)
        sentry = (
            SentryConfig(dsn, self.sentry_environment, self.sentry_release)
            if dsn and not self.otel_sdk_disabled
            else None
        )
        return TelemetryConfig(
            metrics=self.metrics_enabled,
            metrics_key=secret(self.metrics_key),
            audit_sink=self.audit_log,
            tracing=tracing,
            sentry=sentry,
        )

    def export_otel_environment(self) -> None:
        """Hand the standard variables read here (env files, flags) to the SDK."""
        for name in _OTEL_NAMES:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is not None:
                os.environ[name.upper()] = str(value)
