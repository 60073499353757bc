# SPDX-License-Identifier: Apache-2.0
"""The request timeout: a 504 problem until the response has started."""

from __future__ import annotations

import asyncio
import json

import pytest

from genkit_endpoints.http.middleware.request_id import RequestIdMiddleware
from genkit_endpoints.http.middleware.timeout import TimeoutMiddleware
from genkit_endpoints.http.types import Receive, Scope, Send
from tests.unit.asgi._support import ok_app
from tests.unit.asgi_helpers import call, http_scope


def slow_app(delay: float, *, start_first: bool = False):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if start_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(delay)
        if not start_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    return app


async def test_timeout_answers_504_problem_before_the_response_started() -> None:
    app = RequestIdMiddleware(TimeoutMiddleware(slow_app(5), timeout=0.05))
    sent = await asyncio.wait_for(call(app, http_scope("/slow")), 2)
    assert sent.status == 504
    assert sent.headers[b"content-type"] == b"application/problem+json"
    body = json.loads(sent.body)
    assert body["status"] == 504
    assert body["instance"] == "/slow"
    assert body["request_id"] == sent.headers[b"x-request-id"].decode()


async def test_timeout_is_disarmed_once_the_response_started() -> None:
    app = TimeoutMiddleware(slow_app(0.2, start_first=True), timeout=0.05)
    sent = await call(app, http_scope())
    assert sent.status == 200
    assert sent.body == b"late"


async def test_timeout_rejects_non_positive_values() -> None:
    with pytest.raises(ValueError, match="positive"):
        TimeoutMiddleware(ok_app, timeout=0)
