"""Per-request context shared by middleware, handlers and logs: the request id.

A module of its own so that anything (log processors, error rendering, gRPC
interceptors) can read it without importing a transport.
"""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return request_id_var.get()
