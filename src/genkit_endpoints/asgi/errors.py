"""Error envelope: the last line of defence, outermost after the request id.

Anything that escapes the framework or another middleware before the response started
becomes a problem+json 500 with a generic detail (SPEC §2.3) and a logged traceback.
After the response started nothing can be sent any more; the failure is only logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from genkit_endpoints.asgi.types import ASGIApp, Message, Receive, Scope, Send
from genkit_endpoints.context import current_request_id
from genkit_endpoints.errors import PROBLEM_CONTENT_TYPE, EndpointError, InternalError

_log = structlog.get_logger(__name__)


def request_path(scope: Mapping[str, Any]) -> str:
    """The ``instance`` of a problem: the path spelled as Starlette's ``request.url.path``.

    One spelling for every layer and framework, so bodies are byte-identical (SPEC §2.1):
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


class ErrorEnvelopeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            err = exc if isinstance(exc, EndpointError) else InternalError()
            if not isinstance(exc, EndpointError) or err.status >= 500:
                _log.error("unhandled_error", path=scope.get("path"), exc_info=exc)
            if not started:
                await send_problem(send, err, request_path(scope))
