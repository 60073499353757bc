# SPDX-License-Identifier: Apache-2.0
"""Per-request context shared by middleware, handlers and logs: request id, principal and
the request's record (what each layer learned about it, for the audit log and metrics).

A module of its own so that anything (log processors, error rendering, gRPC
interceptors) can read it without importing a transport.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name (``api_key``) or a client certificate's subject (``mtls``).

    Defined here rather than next to the key checks so that everything that only reads
    the caller (cache keys, flows, logs) does not depend on the security layer.
    """

    name: str
    method: Literal["api_key", "mtls"]


request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# Set by the REST auth middleware and the gRPC auth interceptor.
principal_var: ContextVar[Principal | None] = ContextVar("principal", default=None)


# fullmatch, not `^…$`: `$` also matches before a trailing "\n", which would be echoed.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def valid_request_id(raw: bytes) -> bool:
    """Whether a client's request id may be adopted: 1 to 128 of ``[A-Za-z0-9._-]``.

    Anything else (CR/LF, huge values) would end up in our headers, trailers and logs.
    One rule for REST and gRPC, so an id is accepted or refused the same on both.
    """
    return _VALID_REQUEST_ID.fullmatch(raw) is not None


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return request_id_var.get()


def current_principal() -> Principal | None:
    """Who is calling (API key name or client certificate subject), or None without auth."""
    return principal_var.get()


@dataclass(slots=True)
class RequestRecord:
    """What the layers of one request or RPC learned about it, filled in as it runs.

    The outermost layer of each transport (the REST record middleware, the gRPC logging
    interceptor) creates it and reads it once the response is sent: the layers that
    know a fact (the route ran flow X, the cache answered, the limiter admitted, the
    model used N tokens) write it here instead of logging it themselves, so the audit
    line and the metrics see the whole request. Never holds a body, a prompt or a key.
    """

    principal: str | None = None
    flow: str | None = None
    cache: str | None = None  # hit | miss | coalesced | bypass
    rate_limit: str | None = None  # allowed | limited | unavailable
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def add_tokens(self, input_tokens: int | None, output_tokens: int | None) -> None:
        """Add one model response's usage (a tool loop makes several)."""
        if input_tokens is not None:
            self.input_tokens = (self.input_tokens or 0) + input_tokens
        if output_tokens is not None:
            self.output_tokens = (self.output_tokens or 0) + output_tokens


# A mutable record in the context: tasks the request starts copy the context but share
# the record, so what they note reaches the layer that reads it.
record_var: ContextVar[RequestRecord | None] = ContextVar("request_record", default=None)


def current_record() -> RequestRecord | None:
    """The record of the request being served, or None outside a request."""
    return record_var.get()


def note_principal(name: str) -> None:
    """Put the caller's name on the current request's record (access log, audit log).

    The authentication layers of both transports call it: the layer that reads the
    record runs outside them, after their ContextVar was reset.
    """
    record = record_var.get()
    if record is not None:
        record.principal = name
