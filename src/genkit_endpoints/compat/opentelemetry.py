# SPDX-License-Identifier: Apache-2.0
"""OpenTelemetry SDK internals the kit builds on: a finished span copied with other fields.

Before a span leaves the process the kit drops prompt and completion text from it and
masks secrets in what remains (``genkit_endpoints.telemetry.tracing``). A finished span is
read-only, and the SDK offers no hook that rewrites it before the exporter encodes it; its
``ReadableSpan`` constructor is public but documented as not meant for users, so a release
may add a field a hand-made copy would lose. ``span_with`` is the one place that builds
such a copy. ``require_opentelemetry_sdk`` checks the installed SDK against the range in
``genkit_endpoints.compat.SUPPORTED``; the canary test checks that a copy with unchanged
fields encodes to exactly the OTLP message of its original, so a release that adds a
field fails that test rather than silently thinning every exported trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from genkit_endpoints.compat import require_supported

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Status
    from opentelemetry.util.types import Attributes

__all__ = ["require_opentelemetry_sdk", "span_with"]


def require_opentelemetry_sdk() -> str:
    """The installed SDK's version; ``UnsupportedDependency`` outside the checked range."""
    return require_supported("opentelemetry-sdk")


def span_with(
    span: ReadableSpan, *, attributes: Attributes, events: Sequence[Event], status: Status
) -> ReadableSpan:
    """``span`` with other attributes, events and status; every other field as it was."""
    from opentelemetry.sdk.trace import ReadableSpan  # noqa: PLC0415 - only with tracing on

    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
