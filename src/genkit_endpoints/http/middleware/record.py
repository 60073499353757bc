# SPDX-License-Identifier: Apache-2.0
"""The request record: one measurement per request, feeding the access log, the metrics
and the audit log.

It sits outside every middleware that can answer, so 401s, 413s, 429s and 504s are seen
with the status the client got; a request that ended without a response (client gone)
counts as status 499. It creates the request's ``RequestRecord`` (in a ContextVar and in
the scope) for the inner layers to fill — the flow that ran, the cache result, the
rate-limit decision, the model and its tokens — and reads it once the response is sent.

Access-log fields: method, route (the route *template* — ``/flows/{name}``, never the raw
path with its query string, so no secret or unbounded value reaches the log or a metric
label), status, duration in ms, bytes sent, request id (added by the log processors),
client ip (after ``ProxyHeadersMiddleware``), and the principal's name when an API key
authenticated the request (never the key).

Cheap by construction: with the access log below INFO, no metrics and no audit log, it
passes requests straight through; otherwise the logger is bound once and the send
wrapper only looks at the two message types it needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from genkit_endpoints.core.context import RequestRecord, record_var
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send
from genkit_endpoints.telemetry.audit import AuditLog
from genkit_endpoints.telemetry.observer import NO_OBSERVER, Observer

__all__ = ["CLIENT_GONE", "LOGGER_NAME", "UNMATCHED", "RecordMiddleware", "route_templates"]

LOGGER_NAME = "genkit_endpoints.access"
UNMATCHED = "<unmatched>"
CLIENT_GONE = 499  # nginx's convention for "client closed the request"


def route_templates(
    paths: Iterable[str], prefixes: Iterable[tuple[str, str]] = ()
) -> Callable[[str], str]:
    """A path → template function: exact ``paths``, or ``(prefix, template)`` pairs."""
    exact = frozenset(paths)
    by_prefix = tuple(prefixes)

    def template(path: str) -> str:
        if path in exact:
            return path
        for prefix, name in by_prefix:
            if path.startswith(prefix):
                return name
        return UNMATCHED  # unbounded values never become log fields (or metric labels)

    return template


class RecordMiddleware:
    """``logger``: a structlog-style logger (``genkit_endpoints.serving.logging.access_logger``);
    the access line's level is the stdlib one of ``genkit_endpoints.access`` either way.
    ``observer`` gets the request metrics; ``audit`` (None: off) one line per request."""

    def __init__(
        self,
        app: ASGIApp,
        template: Callable[[str], str],
        logger: Any | None = None,
        *,
        observer: Observer = NO_OBSERVER,
        audit: AuditLog | None = None,
    ) -> None:
        self.app = app
        self.template = template
        self.stdlib = logging.getLogger(LOGGER_NAME)
        self.log = logger if logger is not None else structlog.get_logger(LOGGER_NAME)
        self.observer = observer
        self.audit = audit
        self._quiet = observer is NO_OBSERVER and audit is None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        logging_on = self.stdlib.isEnabledFor(logging.INFO)
        if self._quiet and not logging_on:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        record = RequestRecord()
        token = record_var.set(record)
        self.observer.http_started()
        # [status, bytes sent, bytes received]; a list keeps the closures cheap.
        sent = [CLIENT_GONE, 0, 0]

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                sent[1] += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                sent[0] = message["status"]
            await send(message)

        inner_receive = receive
        if self.audit is not None:

            async def counting_receive() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    sent[2] += len(message.get("body", b""))
                return message

            inner_receive = counting_receive

        try:
            await self.app(scope, inner_receive, recording_send)
        finally:
            try:
                self._finished(scope, record, sent, time.perf_counter() - start, logging_on)
            finally:
                record_var.reset(token)

    def _finished(
        self,
        scope: Scope,
        record: RequestRecord,
        sent: list[int],
        seconds: float,
        logging_on: bool,
    ) -> None:
        route = self.template(scope["path"])
        method = scope["method"]
        status = sent[0]
        self.observer.http_finished(method, route, status, seconds)
        client = scope.get("client")
        client_ip = client[0] if client else None
        if logging_on:
            self.log.info(
                "request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 3),
                bytes=sent[1],
                client_ip=client_ip,
                principal=record.principal,
            )
        if self.audit is not None:
            self.audit.http(
                record,
                method=method,
                route=route,
                status=status,
                seconds=seconds,
                client_ip=client_ip,
                bytes_in=sent[2],
                bytes_out=sent[1],
            )
