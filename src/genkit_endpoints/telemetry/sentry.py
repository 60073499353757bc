# SPDX-License-Identifier: Apache-2.0
"""Crash reports to Sentry: every bug that became a 500 or ``INTERNAL``, and nothing else.

With ``SENTRY_DSN`` set (and the ``sentry`` extra installed), each serving process
initialises the SDK and installs a reporter for ``core.crash.report_unexpected``, which
the kit calls exactly where an unexpected exception turns into the generic internal
error. Nothing reports on its own: no logging, framework, excepthook or thread
integration is enabled, so a 4xx, 429, 503 or 504 never becomes an event, and neither
does a log line or an exception some library swallowed. Tracing stays with
OpenTelemetry (the SDK's own tracing is off); an event carries the active span's trace
and span id, and the request id as a tag, so it can be found from the trace, the
response or the logs.

Nothing personal or secret leaves the process: no user, cookies, headers, bodies or
stack-frame variables are collected, and every event passes the log masker before it is
sent — the message, the exception values and every other string, masked by key name,
by value shape (``Bearer …``, ``sk-…``) and by the configured secrets' exact values.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from genkit_endpoints.compat import installed_version
from genkit_endpoints.core.context import current_record, current_request_id
from genkit_endpoints.core.crash import install_reporter, remove_reporter
from genkit_endpoints.security.masking import SecretMasker
from genkit_endpoints.telemetry.config import SentryConfig
from genkit_endpoints.telemetry.tracing import current_span_ids

if TYPE_CHECKING:
    from sentry_sdk.client import BaseClient

__all__ = [
    "FLUSH_TIMEOUT",
    "SentryExtraMissing",
    "SentryReporter",
    "default_release",
    "require_sentry",
    "scrub_event",
    "setup_sentry",
]

# Seconds the end of the lifespan waits for queued events: long enough for a few
# events to a reachable Sentry, short enough not to hold a shutdown on an unreachable one.
FLUSH_TIMEOUT = 2.0

_DIST = "genkit-endpoints"
# Request fields that may hold credentials or personal data; method and URL stay.
_REQUEST_KEEP = ("method", "url")


class SentryExtraMissing(RuntimeError):
    """``SENTRY_DSN`` is set but the ``sentry-sdk`` package is not installed."""


def require_sentry(cfg: SentryConfig | None) -> None:
    """Raise ``SentryExtraMissing`` now if ``cfg`` needs an SDK that is missing.

    The command line calls it before building anything, so a DSN without the extra is
    one line at start-up rather than an import error in every worker.
    """
    if cfg is not None and importlib.util.find_spec("sentry_sdk") is None:
        raise SentryExtraMissing(
            "SENTRY_DSN needs the 'sentry' extra: pip install 'genkit-endpoints[sentry]'"
        )


def default_release() -> str:
    """The release events carry when ``SENTRY_RELEASE`` is unset: this package's version."""
    return f"{_DIST}@{installed_version(_DIST)}"


def scrub_event(masker: SecretMasker, event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as it may leave the process (the SDK's ``before_send``).

    The SDK is told to collect nothing personal; this is the second line for whatever
    it collects anyway, or a future version adds: request headers, cookies, bodies and
    query strings, the user, breadcrumbs and frame variables are dropped, and the rest is
    masked like a log line.
    """
    request = event.get("request")
    if isinstance(request, dict):
        kept = {key: request[key] for key in _REQUEST_KEEP if key in request}
        if isinstance(kept.get("url"), str):
            parts = urlsplit(kept["url"])
            kept["url"] = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        event["request"] = kept
    for key in ("user", "breadcrumbs"):
        event.pop(key, None)
    exceptions = event.get("exception")
    values = exceptions.get("values") if isinstance(exceptions, dict) else None
    for value in values if isinstance(values, list) else ():
        stacktrace = value.get("stacktrace") if isinstance(value, dict) else None
        frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
        for frame in frames if isinstance(frames, list) else ():
            if isinstance(frame, dict):
                frame.pop("vars", None)
    return dict(masker(None, "sentry", event))


def _privacy_options() -> dict[str, Any]:
    """The SDK options that turn off collecting personal data, in the installed SDK's
    words: late 2.x releases added ``data_collection`` (deprecating the separate
    switches) and 3.x only has it; earlier ones have only the switches."""
    from sentry_sdk.consts import DEFAULT_OPTIONS  # noqa: PLC0415 - the optional extra

    if "data_collection" in DEFAULT_OPTIONS:
        return {
            "data_collection": {
                "user_info": False,
                "cookies": {"mode": "off"},
                "http_headers": {"request": {"mode": "off"}},
                "http_bodies": [],
                "url_query_params": {"mode": "off"},
                "graphql": {"document": False, "variables": False},
                "gen_ai": {"inputs": False, "outputs": False},
                "mcp": {"inputs": False, "outputs": False},
                "database_query_data": False,
                "queues": False,
                "stack_frame_variables": False,
            }
        }
    return {
        "send_default_pii": False,
        "include_local_variables": False,
        "max_request_body_size": "never",
    }


class SentryReporter:
    """The crash reporter ``setup_sentry`` installs: one event per reported exception,
    tagged with the request id (and the flow, when one ran) and tied to the active
    span. ``aclose`` (end of the lifespan) sends what is queued and uninstalls it."""

    def __init__(self, client: BaseClient, flush_timeout: float = FLUSH_TIMEOUT) -> None:
        self._client = client
        self._flush_timeout = flush_timeout

    def __call__(self, exc: BaseException) -> None:
        import sentry_sdk  # noqa: PLC0415 - the optional extra; loaded by setup_sentry already

        tags: dict[str, str] = {}
        request_id = current_request_id()
        if request_id is not None:
            tags["request_id"] = request_id
        record = current_record()
        if record is not None and record.flow is not None:
            tags["flow"] = record.flow
        contexts: dict[str, dict[str, Any]] = {}
        ids = current_span_ids()
        if ids is not None:
            contexts["trace"] = {"trace_id": ids[0], "span_id": ids[1]}
        sentry_sdk.capture_exception(exc, tags=tags, contexts=contexts)

    def close(self) -> None:
        """Stop reporting, then send the queued events (at most ``flush_timeout`` s)."""
        remove_reporter(self)
        self._client.close(timeout=self._flush_timeout)

    async def aclose(self) -> None:
        # The flush blocks on the SDK's sender thread: off the event loop.
        await asyncio.to_thread(self.close)


def setup_sentry(cfg: SentryConfig | None, secrets: Iterable[str] = ()) -> SentryReporter | None:
    """Initialise the SDK for ``cfg`` and install its reporter; None when ``cfg`` is None.

    ``secrets`` are the configured secrets' values (API keys, provider keys…), masked in
    every event like in the logs. Raises ``SentryExtraMissing`` without the extra.
    """
    if cfg is None:
        return None
    require_sentry(cfg)
    import sentry_sdk  # noqa: PLC0415 - the optional extra
    from sentry_sdk.integrations.dedupe import DedupeIntegration  # noqa: PLC0415

    masker = SecretMasker(secrets)

    def before_send(event: Any, hint: Any) -> Any:
        return scrub_event(masker, event)

    sentry_sdk.init(
        dsn=cfg.dsn,
        release=cfg.release or default_release(),
        environment=cfg.environment,
        # Only the reports the kit makes: no integration that reports by itself (logging,
        # excepthook, threads, frameworks, HTTP clients). Dedupe only drops a repeat.
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[DedupeIntegration()],
        traces_sample_rate=None,  # errors only: traces are OpenTelemetry's
        auto_session_tracking=False,
        send_client_reports=False,
        max_breadcrumbs=0,
        before_send=before_send,
        **_privacy_options(),
    )
    reporter = SentryReporter(sentry_sdk.get_client())
    install_reporter(reporter)
    return reporter
