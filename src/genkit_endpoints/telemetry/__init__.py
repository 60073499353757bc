# SPDX-License-Identifier: Apache-2.0
"""Observability: what the service tells operators — metrics, traces, audit log, crash reports.

Every other layer reports through ``Observer`` (no-op by default), so the policies, the
model client and the transports never import ``prometheus_client`` or OpenTelemetry;
``PrometheusMetrics`` is the observer the service installs.
"""

from genkit_endpoints.telemetry.observer import Observer

__all__ = ["Observer"]
