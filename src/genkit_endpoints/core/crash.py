# SPDX-License-Identifier: Apache-2.0
"""Crash reports: the one call made wherever an unexpected exception becomes a 500.

A bug in a flow, a plugin, an adapter or the kit ends as the generic internal error —
a problem+json 500 on REST, ``INTERNAL`` on gRPC. The few places where that happens
already log the exception with its traceback; each of them also hands it to
``report_unexpected``, which passes it on to the crash reporter the service installed
(Sentry: ``genkit_endpoints.telemetry.sentry``) and does nothing when none is.

It sits in the bottom layer because the flow runners, both transports and the framework
adapters call it, and none of them may depend on telemetry. One reporter per process:
the reporting SDKs are process-wide themselves.

Only bugs are reported. An error of the hierarchy with a status other than 500 — a
4xx, 429, 502, 503 (breaker open, overload, drain) or 504 — was raised on purpose and
says nothing about the code; an alert for every one of them would drown the real ones.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from genkit_endpoints.core.errors import EndpointError

__all__ = [
    "Reporter",
    "install_reporter",
    "is_unexpected",
    "remove_reporter",
    "report_unexpected",
]

Reporter = Callable[[BaseException], None]

_log = structlog.get_logger(__name__)
_reporter: Reporter | None = None


def install_reporter(reporter: Reporter | None) -> Reporter | None:
    """Make ``reporter`` the process's crash reporter (None: none); returns the previous one."""
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


def remove_reporter(reporter: Reporter) -> None:
    """Uninstall ``reporter`` if it is still the installed one (a later one stays)."""
    global _reporter  # noqa: PLW0603 - see install_reporter
    if _reporter is reporter:
        _reporter = None


def is_unexpected(exc: BaseException) -> bool:
    """Whether ``exc`` is a bug: anything outside the hierarchy, or a plain 500 in it."""
    if isinstance(exc, EndpointError):
        return exc.status == 500 and exc.grpc_code == "INTERNAL"
    return isinstance(exc, Exception)  # cancellation and exits are not failures


def report_unexpected(exc: BaseException) -> None:
    """Hand ``exc`` to the crash reporter when it is a bug; never raises.

    Call it where the exception is logged with its traceback, once per failed request:
    the reporter reads the request id (and trace) of the request being served.
    """
    reporter = _reporter
    if reporter is None or not is_unexpected(exc):
        return
    try:
        reporter(exc)
    except Exception as failure:  # a broken reporter must not become the request's failure
        _log.warning("crash_report_failed", error=type(failure).__name__)
