# SPDX-License-Identifier: Apache-2.0
"""Which failures of a model call are the provider's, and which are bugs of this service.

Only the provider failing — an error answer, a timeout, a dropped or refused connection,
a reply that cannot be read — may become a 502/504 and count against the circuit
breaker. A programming error in a flow, a tool or a model plugin is a bug here: counted,
one broken flow would open the breaker for every flow and blame the provider for it.

Genkit blurs the two twice. Its action runtime wraps whatever a model plugin raises that
is not a ``GenkitError`` into ``GenkitError(INTERNAL, cause=<original>)``, so a
``KeyError`` in a plugin and a refused connection arrive looking alike. Then generate
boxes the failure into ``response.error``: status, message and details survive, the
exception and its traceback do not. So the decision is made where the cause is still
at hand — in the model-call middleware (``model_call_failure``) — and a provider failure
leaves it with a mark in ``details``, which the box keeps. ``raise_for_response`` then
maps marked failures and invalid model output to 502/504 errors and everything else
boxed to a 500; ``typed_failures`` does the same for failures generate raises instead
of boxing, and lets any other exception (a bug) propagate unchanged.

Transport and SDK errors are recognised by type: ``httpx`` and its fork ``httpx2``
(google-genai and openai use one each), the openai and google-genai SDK errors, timeouts
and network-level OS errors. The SDK classes are looked up in ``sys.modules``: an SDK
that was never imported cannot have raised, and checking must not cost its import.
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

import structlog
from genkit import GenkitError, Interrupt, ModelResponse
from genkit.plugin_api import StatusName, from_http_code

from genkit_endpoints.core.crash import report_unexpected
from genkit_endpoints.core.errors import (
    EndpointError,
    InternalError,
    InvalidModelOutput,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)

__all__ = [
    "MARK",
    "error_from_genkit",
    "is_interrupt",
    "is_marked",
    "mark",
    "model_call_failure",
    "original",
    "provider_status",
    "raise_for_response",
    "raised_status",
    "typed_failures",
]

_log = structlog.get_logger(__name__)

MARK = "genkit_endpoints_upstream"

# Statuses that mean the provider is unavailable, whoever reported them.
_OUTAGE: frozenset[str] = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})

# OS errors that are the network failing; others (a missing file, a permission) are bugs.
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED",
        "ECONNRESET",
        "ECONNABORTED",
        "EPIPE",
        "ETIMEDOUT",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "EHOSTDOWN",
        "EHOSTUNREACH",
    )
    if hasattr(errno, name)
)
_MAX_CHAIN = 8


def _http_status(code: object) -> StatusName:
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return from_http_code(code)
    return "INTERNAL"  # an error without a usable status: the provider failed somehow


# Transport and SDK errors, checked in order (subclasses before their bases): the status
# each means, or None to read the HTTP status the error carries at the given attribute.
_SDK_ERRORS: tuple[tuple[str, str, StatusName | None, str], ...] = (
    ("httpx", "TimeoutException", "DEADLINE_EXCEEDED", ""),
    ("httpx", "HTTPStatusError", None, "response.status_code"),
    ("httpx", "HTTPError", "UNAVAILABLE", ""),  # connect, read, write, protocol
    ("httpx2", "TimeoutException", "DEADLINE_EXCEEDED", ""),  # the fork openai 3 uses
    ("httpx2", "HTTPStatusError", None, "response.status_code"),
    ("httpx2", "HTTPError", "UNAVAILABLE", ""),
    ("openai", "APITimeoutError", "DEADLINE_EXCEEDED", ""),
    ("openai", "APIConnectionError", "UNAVAILABLE", ""),
    ("openai", "APIStatusError", None, "status_code"),
    ("openai", "APIError", "INTERNAL", ""),  # e.g. a reply the SDK could not validate
    ("google.genai.errors", "APIError", None, "code"),
)


def _attribute(obj: object, path: str) -> object:
    for name in path.split("."):
        obj = getattr(obj, name, None)
    return obj


def provider_status(exc: BaseException) -> StatusName | None:
    """The status of a transport or provider-SDK error; None for any other exception."""
    if isinstance(exc, TimeoutError):
        return "DEADLINE_EXCEEDED"
    for module, name, status, code_at in _SDK_ERRORS:
        mod = sys.modules.get(module)
        cls: Any = getattr(mod, name, None) if mod is not None else None
        if isinstance(cls, type) and isinstance(exc, cls):
            return status or _http_status(_attribute(exc, code_at))
    if isinstance(exc, ConnectionError | socket.gaierror | ssl.SSLError) or (
        isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
    ):
        return "UNAVAILABLE"
    return None


def innermost_cause(exc: GenkitError) -> BaseException | None:
    """The first non-Genkit exception a chain of Genkit errors was raised for; None if none.

    ``cause`` is what the action runtime sets when it wraps a foreign exception, and what
    plugins set when they classify an SDK error. Some plugins only chain it: the Gemini
    plugin turns every non-API error of a unary call (a read timeout, a dropped
    connection, a bug) into ``raise GenkitError(INTERNAL, …) from exc``.
    """
    current: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if not isinstance(current, GenkitError):
            return current
        current = current.cause if current.cause is not None else current.__cause__
    return None


def mark(status: StatusName, message: str, source: GenkitError | None = None) -> GenkitError:
    """A provider failure, marked so the mark survives Genkit boxing it into a response."""
    return GenkitError(
        status=status,
        message=message,
        details={MARK: True},
        response_metadata=source.response_metadata if source is not None else None,
    )


def is_marked(details: object) -> bool:
    return isinstance(details, Mapping) and details.get(MARK) is True


def model_call_failure(exc: Exception) -> GenkitError | None:
    """What a model call raised, marked if it is the provider's failure; None for a bug.

    * A ``GenkitError`` with no foreign cause was raised by the plugin itself to report
      what the provider did (an error status, a reply without choices): the provider's.
      (A foreign cause is the ``cause`` Genkit's wrapper sets, or what a plugin raised
      its error ``from``.)
    * A transport or SDK error, raw or as the cause: the provider's, with the plugin's
      status when it classified it (a 503 it read) and the error's own otherwise.
    * A foreign cause under a status other than INTERNAL: the plugin chose that status
      (the runtime's wrapper is always INTERNAL), so it is the plugin's classification.
    * A JSON decoding error: the provider's reply could not be read.
    * Anything else (a ``KeyError``, a ``TypeError`` …) is a bug in the plugin.
    """
    if not isinstance(exc, GenkitError):
        status = provider_status(exc)
        return None if status is None else mark(status, f"{type(exc).__name__}: {exc}")
    cause = innermost_cause(exc)
    if cause is None:
        return mark(exc.status, str(exc), exc)
    sdk_status = provider_status(cause)
    if sdk_status is not None:
        return mark(exc.status if exc.status != "INTERNAL" else sdk_status, str(exc), exc)
    if exc.status != "INTERNAL" or isinstance(cause, json.JSONDecodeError):
        return mark(exc.status, str(exc), exc)
    return None


def raised_status(exc: Exception) -> StatusName | None:
    """The provider-failure status of an exception generate raised instead of boxing it.

    Such failures happened outside the model call, where nothing marked them: a plugin
    that lists its models on first use re-raises its SDK's error, for instance. A raw
    Genkit error counts only with an outage status or a transport cause; with another
    status it reports a wrong call (an unknown option, a bad schema), not the provider.
    """
    if not isinstance(exc, GenkitError):
        return provider_status(exc)
    if exc.status in _OUTAGE:
        return exc.status
    cause = innermost_cause(exc)
    return provider_status(cause) if cause is not None else None


def is_interrupt(exc: BaseException) -> bool:
    """A tool's ``Interrupt`` (control flow, not a failure), also inside Genkit's wrapper."""
    current: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if isinstance(current, Interrupt):
            return True
        if not isinstance(current, GenkitError):
            return False
        current = current.cause
    return False


# Provider answers that refuse this request rather than signal an outage (4xx but 429).
_REJECTIONS = frozenset(
    {
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
    }
)


def error_from_genkit(
    status: str | None, message: str | None, reason: str | None = None
) -> EndpointError:
    """The client-facing error for a provider failure; its message is only logged."""
    _log.warning("model_call_failed", status=status, reason=reason, message=message)
    if reason == "INVALID_OUTPUT":
        return InvalidModelOutput()
    if status == "DEADLINE_EXCEEDED":
        return UpstreamTimeout()
    if status == "NOT_FOUND":
        return InternalError("The configured model is not available.")
    if status in _REJECTIONS:
        return UpstreamRejected()
    return UpstreamError()


def original(exc: Exception) -> BaseException:
    """The exception a plugin or tool raised, out of the wrapper Genkit's runtime adds."""
    if isinstance(exc, GenkitError):
        return innermost_cause(exc) or exc
    return exc


def _raised(exc: Exception) -> EndpointError | None:
    """The typed error for a failure generate raised instead of boxing; None: a bug.

    A transport or SDK error is the provider's (e.g. google-genai's error from a failed
    first model listing, re-raised on later calls). A Genkit error with another status
    reports a wrong call and is a 500; any other exception (a ``TypeError`` from a
    mistyped argument …) is left to propagate as it is, so the route logs its traceback
    and answers 500.
    """
    if isinstance(exc, EndpointError):
        return exc
    status = raised_status(exc)
    if status is not None:
        return error_from_genkit(status, f"{type(exc).__name__}: {exc}")
    if not isinstance(exc, GenkitError):
        return None
    if exc.reason == "MODEL_NOT_FOUND":
        return error_from_genkit("NOT_FOUND", str(exc))
    _log.error("generate_failed", exc_info=exc)
    report_unexpected(exc)
    return InternalError()


class _TypedFailures:
    """The context manager behind ``typed_failures``: stateless, so one serves every use.

    A plain class, not ``contextlib.contextmanager``: a stream enters it once per chunk,
    and a generator per chunk is work for nothing.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if not isinstance(exc, Exception):
            return False  # no failure, or cancellation: nothing to type
        err = _raised(exc)
        if err is None or err is exc:
            return False  # a bug, or already typed: propagates unchanged
        raise err from None


_TYPED_FAILURES = _TypedFailures()


def typed_failures() -> _TypedFailures:
    """Provider failures raised by generate as typed errors; bugs propagate unchanged."""
    return _TYPED_FAILURES


def raise_for_response(response: ModelResponse) -> None:
    """Raise the typed error for a failed generation (Genkit 0.12 does not raise).

    The provider's failures carry the policy's mark; invalid output, or a model that
    answered "failed" itself, is the model's. Any other boxed failure — a tool that
    raised, a model plugin's bug, an unknown tool — is ours: a 500, already logged with
    its traceback where it was raised.
    """
    err = response.error
    if err is None:
        if str(response.finish_reason or "") == "failed":  # the model's own answer
            raise error_from_genkit(None, response.finish_message)
        return
    details = getattr(err, "details", None)
    reason = details.get("reason") if isinstance(details, Mapping) else None
    reason = reason if isinstance(reason, str) else None
    status = getattr(err, "status", None)
    message = getattr(err, "message", None) or response.finish_message
    if reason == "INVALID_OUTPUT" or (is_marked(details) and reason != "TOOL_FAILED"):
        raise error_from_genkit(status, message, reason)
    _log.error("generation_failed", status=status, reason=reason, message=message)
    raise InternalError()
