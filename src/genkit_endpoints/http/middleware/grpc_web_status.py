# SPDX-License-Identifier: Apache-2.0
"""gRPC-Web statuses for the HTTP layers' refusals.

The trusted-host check, the concurrency limit, the body limit, CORS and the error
envelope answer before a gRPC-Web call reaches its handler, and they answer in HTTP: a
problem+json body with a 4xx or 5xx status. A gRPC-Web client reads neither — it wants
HTTP 200 with ``grpc-status`` and ``grpc-message`` headers (a trailers-only response),
and some clients turn any other HTTP status into a vague UNKNOWN. So for gRPC-Web
requests this layer rewrites such a refusal into that form, with the gRPC code the error
hierarchy gives the same error (found by the problem's ``type``, else by its status):
413 becomes RESOURCE_EXHAUSTED, 503 UNAVAILABLE, and so on. The other headers
(``retry-after``, ``connection: close``, the security and CORS headers) stay.

Placed inside the security headers and outside the error envelope, so every refusal
passes through it. Anything but a gRPC-Web request passes straight through.
"""

from __future__ import annotations

import orjson

from genkit_endpoints.core.errors import PROBLEM_CONTENT_TYPE, EndpointError
from genkit_endpoints.core.grpc_wire import GRPC_STATUS_NUMBERS, grpc_message, is_grpc_web
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GrpcWebStatusMiddleware"]

_CONTENT_TYPE = b"content-type"
_PROBLEM = PROBLEM_CONTENT_TYPE.encode()
_DROPPED = frozenset({_CONTENT_TYPE, b"content-length"})


def _codes() -> tuple[dict[str, str], dict[int, str]]:
    """The gRPC code of every problem type, and of every status (the most general class's)."""
    by_type: dict[str, str] = {}
    by_status: dict[int, str] = {}
    prefix = EndpointError().type_uri.removesuffix(EndpointError.slug)
    todo: list[type[EndpointError]] = [EndpointError]
    while todo:  # breadth first: a status's code is its most general class's
        cls = todo.pop(0)
        by_type.setdefault(prefix + cls.slug, cls.grpc_code)
        by_status.setdefault(cls.status, cls.grpc_code)
        todo.extend(cls.__subclasses__())
    return by_type, by_status


class GrpcWebStatusMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._by_type, self._by_status = _codes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_grpc_web(scope):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []  # a problem's start, until its body says which problem
        body = bytearray()

        async def translating_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                if message["status"] != 200 and any(
                    k == _CONTENT_TYPE and v.startswith(_PROBLEM) for k, v in headers
                ):
                    held.append(message)
                    return
            elif held and message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._send_status(send, held.pop(), bytes(body))
                return
            await send(message)

        await self.app(scope, receive, translating_send)

    async def _send_status(self, send: Send, start: Message, body: bytes) -> None:
        try:
            problem = orjson.loads(body)
        except orjson.JSONDecodeError:
            problem = {}
        code = self._by_type.get(str(problem.get("type")))
        if code is None:
            code = self._by_status.get(start["status"], "INTERNAL")
        detail = str(problem.get("detail") or "")
        headers = [(k, v) for k, v in start.get("headers", ()) if k not in _DROPPED]
        headers += [
            (_CONTENT_TYPE, b"application/grpc-web+proto"),
            (
                b"grpc-status",
                str(GRPC_STATUS_NUMBERS.get(code, GRPC_STATUS_NUMBERS["UNKNOWN"])).encode(),
            ),
            (b"grpc-message", grpc_message(detail).encode("ascii")),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
