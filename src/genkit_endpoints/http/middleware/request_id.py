# SPDX-License-Identifier: Apache-2.0
"""Request id: accept a well-formed client ``X-Request-ID`` or make one; echo it; expose it to logs.

Only ids of at most 128 characters of ``[A-Za-z0-9._-]`` are accepted, so a client
cannot inject CR/LF or huge values into our headers and logs.
"""

from __future__ import annotations

import os

from genkit_endpoints.core.context import request_id_var, valid_request_id
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid: str | None = None
        for name, value in scope["headers"]:
            if name == HEADER:
                if valid_request_id(value):
                    rid = value.decode("ascii")
                break
        if rid is None:
            rid = os.urandom(16).hex()  # 128 random bits; ~10x cheaper than uuid4()
        raw = rid.encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, raw)]
            await send(message)

        token = request_id_var.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
