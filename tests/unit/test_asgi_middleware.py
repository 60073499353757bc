"""The kit's pure-ASGI middleware, each on a tiny raw ASGI app."""

from __future__ import annotations

import asyncio
import json

import pytest

from genkit_endpoints.asgi.errors import ErrorEnvelopeMiddleware
from genkit_endpoints.asgi.request_id import RequestIdMiddleware
from genkit_endpoints.asgi.stack import HttpPolicy, build_stack
from genkit_endpoints.asgi.timeout import TimeoutMiddleware
from genkit_endpoints.asgi.types import Message, Receive, Scope, Send
from genkit_endpoints.context import current_request_id
from genkit_endpoints.errors import RateLimited
from tests.unit.asgi_helpers import call, http_scope


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    rid = current_request_id() or ""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"x-seen", rid.encode())]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def slow_app(delay: float, *, start_first: bool = False):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if start_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(delay)
        if not start_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    return app


async def test_request_id_generated_when_absent_and_visible_to_the_app() -> None:
    sent = await call(RequestIdMiddleware(ok_app), http_scope())
    rid = sent.headers[b"x-request-id"]
    assert len(rid) == 32
    assert sent.headers[b"x-seen"] == rid


async def test_valid_client_request_id_is_echoed() -> None:
    scope = http_scope(headers=[(b"x-request-id", b"abc-123_X.y")])
    sent = await call(RequestIdMiddleware(ok_app), scope)
    assert sent.headers[b"x-request-id"] == b"abc-123_X.y"


@pytest.mark.parametrize(
    "bad", [b"a\r\nSet-Cookie: x=1", b"x" * 129, b"", b"sp ace", b"\xff\xfe", b"<script>"]
)
async def test_malformed_client_request_id_is_replaced(bad: bytes) -> None:
    scope = http_scope(headers=[(b"x-request-id", bad)])
    sent = await call(RequestIdMiddleware(ok_app), scope)
    rid = sent.headers[b"x-request-id"]
    assert rid != bad
    assert len(rid) == 32


async def test_request_id_context_is_reset_after_the_request() -> None:
    await call(RequestIdMiddleware(ok_app), http_scope())
    assert current_request_id() is None


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


async def test_non_http_scopes_pass_through_untouched() -> None:
    seen: list[str] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await build_stack(lifespan_app, HttpPolicy(request_timeout=1))({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]
