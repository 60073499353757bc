# SPDX-License-Identifier: Apache-2.0
"""The error envelope: generic 500s, endpoint errors kept, never two responses."""

from __future__ import annotations

import json

from genkit_endpoints.core.errors import RateLimited
from genkit_endpoints.http.middleware.errors import ErrorEnvelopeMiddleware
from genkit_endpoints.http.middleware.stack import HttpPolicy, build_stack
from genkit_endpoints.http.types import Receive, Scope, Send
from tests.unit.asgi_helpers import call, http_scope


async def test_unexpected_exception_becomes_generic_500_problem() -> None:
    async def boom(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    sent = await call(build_stack(boom, HttpPolicy(request_timeout=5)), http_scope("/boom"))
    assert sent.status == 500
    body = json.loads(sent.body)
    assert body["status"] == 500
    assert "secret" not in sent.body.decode()
    assert "RuntimeError" not in sent.body.decode()
    assert body["request_id"] == sent.headers[b"x-request-id"].decode()


async def test_endpoint_error_from_middleware_keeps_its_status_and_headers() -> None:
    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        raise RateLimited(headers={"retry-after": "3"})

    sent = await call(ErrorEnvelopeMiddleware(limited), http_scope())
    assert sent.status == 429
    assert sent.headers[b"retry-after"] == b"3"


async def test_exception_after_response_started_is_not_followed_by_a_second_response() -> None:
    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("mid-body")

    sent = await call(ErrorEnvelopeMiddleware(half), http_scope())
    starts = [m for m in sent.messages if m["type"] == "http.response.start"]
    assert len(starts) == 1
