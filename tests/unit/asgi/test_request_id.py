# SPDX-License-Identifier: Apache-2.0
"""The request id: generated, echoed when safe, visible to the app, reset after."""

from __future__ import annotations

import pytest

from genkit_endpoints.core.context import current_request_id
from genkit_endpoints.http.middleware.request_id import RequestIdMiddleware
from tests.unit.asgi._support import json_app, ok_app
from tests.unit.asgi_helpers import call, http_scope


@pytest.mark.parametrize(
    "bad", [b"abc\n", b"abc\r\n", b"\nabc", b"a" * 200, "caf\u00e9".encode(), b"id with space"]
)
async def test_request_id_with_line_breaks_length_or_non_ascii_is_never_echoed(bad: bytes) -> None:
    # `$` in a regex also matches before a trailing newline: "abc\n" must not pass.
    sent = await call(RequestIdMiddleware(json_app()), http_scope(headers=[(b"x-request-id", bad)]))
    rid = sent.headers[b"x-request-id"]
    assert rid != bad
    assert len(rid) == 32
    assert all(c in b"0123456789abcdef" for c in rid)


async def test_request_id_of_128_characters_is_accepted() -> None:
    good = b"A-z_0.9" * 18 + b"AA"
    assert len(good) == 128
    sent = await call(
        RequestIdMiddleware(json_app()), http_scope(headers=[(b"x-request-id", good)])
    )
    assert sent.headers[b"x-request-id"] == good


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
