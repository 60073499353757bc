"""OpenTelemetry tracing: the ids of the current span, for logs and the audit log."""

from __future__ import annotations

from opentelemetry import trace

__all__ = ["current_span_ids", "current_trace_id"]


def current_span_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the active span as lowercase hex, None when none is recording."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def current_trace_id() -> str | None:
    """The active trace's id (hex), None outside a traced request."""
    ids = current_span_ids()
    return ids[0] if ids is not None else None
