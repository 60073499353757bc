# SPDX-License-Identifier: Apache-2.0
"""Error envelope: the last line of defence, outermost after the request id.

Anything that escapes the framework or another middleware before the response started
becomes a problem+json 500 with a generic detail and a logged traceback.
After the response started nothing can be sent any more; the failure is only logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from genkit_endpoints.core.context import current_request_id
from genkit_endpoints.core.crash import report_unexpected
from genkit_endpoints.core.errors import (
    PROBLEM_CONTENT_TYPE,
    BadRequest,
    EndpointError,
    InternalError,
)
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send

_log = structlog.get_logger(__name__)


def request_path(scope: Mapping[str, Any]) -> str:
    """The ``instance`` of a problem: the path spelled as Starlette's ``request.url.path``.

    One spelling for every layer and framework, so bodies are byte-identical:
    a decoded ``?``, ``#`` or ``\\`` in a path stays escaped.
    """
    path: str = scope.get("path", "")
    return path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


async def send_problem(send: Send, err: EndpointError, instance: str) -> None:
    """Write ``err`` as a complete problem+json response."""
    body = err.problem_bytes(instance=instance, request_id=current_request_id())
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()),
    ]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class IncompleteBody(BadRequest):
    default_detail = "The request body ended before it was complete."


class ErrorEnvelopeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # [response started, body cut short by a disconnect, app's response replaced]
        state = [False, False, False]
        instance = request_path(scope)

        async def tracking_send(message: Message) -> None:
            if state[2]:
                return
            if message["type"] == "http.response.start":
                if state[1] and message["status"] >= 500:
                    # The framework turned the cut-short body into a 500 of its own.
                    state[2] = True
                    await _incomplete(send, scope, instance)
                    return
                state[0] = True
            await send(message)

        async def tracking_receive() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                state[1] = True
            return message

        try:
            await self.app(scope, tracking_receive, tracking_send)
        except Exception as exc:
            if state[1]:
                if not (state[0] or state[2]):
                    await _incomplete(send, scope, instance)
                return
            err = exc if isinstance(exc, EndpointError) else InternalError()
            if not isinstance(exc, EndpointError) or err.status >= 500:
                _log.error("unhandled_error", path=scope.get("path"), exc_info=exc)
                report_unexpected(exc)  # a 503 or 504 that escaped is logged, not reported
            if not state[0]:
                await send_problem(send, err, instance)
        else:
            if state[1] and not (state[0] or state[2]):
                await _incomplete(send, scope, instance)  # Quart: gives up without a word


async def _incomplete(send: Send, scope: Scope, instance: str) -> None:
    """The request body stopped midway: the client left, or (granian) its chunked framing
    was broken. Either way the request never completed — a 400, not a server error; if
    the client is gone, the answer goes nowhere."""
    _log.info("request_body_incomplete", path=scope.get("path"))
    await send_problem(send, IncompleteBody(headers={"connection": "close"}), instance)
