"""The request body limit: 413 before or while reading, never a late 200."""

from __future__ import annotations

import json
from typing import Any

import pytest

from genkit_endpoints.asgi.body_limit import BodyLimitMiddleware
from genkit_endpoints.asgi.policy import HttpPolicy
from genkit_endpoints.asgi.stack import build_stack
from genkit_endpoints.asgi.types import Receive, Scope, Send
from tests.unit.asgi._support import assert_secured, reading_app
from tests.unit.asgi_helpers import call_chunks, http_scope


def post(length: int | None = None) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return http_scope("/upload", "POST", headers)


async def test_declared_length_over_the_limit_is_413_before_anything_is_read() -> None:
    bodies: list[bytes] = []
    sent, upload = await call_chunks(
        BodyLimitMiddleware(reading_app(bodies, []), 100), post(101), [b"x" * 101]
    )
    assert sent.status == 413
    assert upload.pulled_messages == 0
    assert bodies == []
    assert sent.headers[b"connection"] == b"close"
    assert json.loads(sent.body)["detail"] == "The request body is larger than 100 bytes."


@pytest.mark.parametrize("length", [None, 100])
async def test_a_body_exactly_at_the_limit_is_accepted(length: int | None) -> None:
    bodies: list[bytes] = []
    chunks = [b"a" * 40, b"b" * 40, b"c" * 20]
    sent, _ = await call_chunks(
        BodyLimitMiddleware(reading_app(bodies, []), 100), post(length), chunks
    )
    assert sent.status == 200
    assert bodies == [b"".join(chunks)]


async def test_chunked_body_over_the_limit_stops_reading_at_the_crossing_chunk() -> None:
    bodies: list[bytes] = []
    events: list[str] = []
    chunk = 64
    chunks = [b"x" * chunk] * 50  # 3200 bytes offered
    app = BodyLimitMiddleware(reading_app(bodies, events), 200)
    sent, upload = await call_chunks(app, post(), chunks)
    assert sent.status == 413
    assert upload.pulled_bytes <= 200 + chunk
    assert upload.pulled_messages == 4  # 256 bytes: the first chunk over the limit
    assert events[-1] == "http.disconnect"  # the app was told the client is gone
    # The app's own (late) 200 never reached the client: one response, the 413.
    assert [m["status"] for m in sent.messages if m["type"] == "http.response.start"] == [413]
    assert b"late" not in sent.body


async def test_a_lying_content_length_is_caught_while_streaming() -> None:
    sent, upload = await call_chunks(
        BodyLimitMiddleware(reading_app([], []), 100), post(10), [b"x" * 60] * 5
    )
    assert sent.status == 413
    assert upload.pulled_messages == 2


async def test_an_app_that_fails_on_the_reported_disconnect_leaves_only_the_413() -> None:
    async def strict(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] == "http.request":
            pass
        raise ConnectionError("client disconnected")  # what frameworks raise

    app = build_stack(strict, HttpPolicy(max_body_size=100))
    sent, _ = await call_chunks(app, post(), [b"x" * 80] * 3)
    assert sent.status == 413
    assert_secured(sent)
    assert [m["type"] for m in sent.messages] == ["http.response.start", "http.response.body"]
