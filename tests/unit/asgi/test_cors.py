# SPDX-License-Identifier: Apache-2.0
"""CORS: an explicit origin allowlist, preflights answered without the app."""

from __future__ import annotations

from typing import Any

import pytest

from genkit_endpoints.http.middleware.cors import CorsMiddleware
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from tests.unit.asgi._support import assert_secured, client_echo_app, header_values, json_app
from tests.unit.asgi_helpers import call, http_scope

ALLOWED = "https://app.example.com"


def cors_stack(
    app: ASGIApp | None = None, origins: tuple[str, ...] = (ALLOWED,), **kw: Any
) -> ASGIApp:
    return build_stack(app or json_app(), HttpPolicy(cors_allowed_origins=origins, **kw))


def preflight(
    origin: bytes, method: bytes = b"POST", headers: bytes | None = None
) -> dict[str, Any]:
    hdrs = [(b"origin", origin), (b"access-control-request-method", method)]
    if headers is not None:
        hdrs.append((b"access-control-request-headers", headers))
    return http_scope("/tell-joke", "OPTIONS", hdrs)


async def test_without_an_allowlist_no_cors_header_is_ever_sent() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["method"])
        await json_app()(scope, receive, send)

    simple = await call(build_stack(app), http_scope(headers=[(b"origin", b"https://a.example")]))
    pre = await call(build_stack(app), preflight(b"https://a.example"))
    for sent in (simple, pre):
        assert not [k for k in sent.headers if k.startswith(b"access-control-")]
    assert seen == ["GET", "OPTIONS"]  # the preflight went to the routes (which 405 it)


async def test_allowed_origin_gets_its_origin_echoed_and_the_request_id_exposed() -> None:
    scope = http_scope(headers=[(b"origin", b"https://APP.example.com")])
    sent = await call(cors_stack(origins=("https://app.example.com/",)), scope)
    assert sent.status == 200
    assert sent.headers[b"access-control-allow-origin"] == b"https://APP.example.com"
    assert b"x-request-id" in sent.headers[b"access-control-expose-headers"]
    assert b"Origin" in header_values(sent, b"vary")
    assert b"access-control-allow-credentials" not in sent.headers


async def test_disallowed_origin_is_served_without_cors_headers() -> None:
    sent = await call(cors_stack(), http_scope(headers=[(b"origin", b"https://evil.example")]))
    assert sent.status == 200
    assert not [k for k in sent.headers if k.startswith(b"access-control-")]


async def test_preflight_from_an_allowed_origin_is_answered_without_the_app() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["path"])

    sent = await call(
        cors_stack(app), preflight(ALLOWED.encode(), headers=b"Content-Type, X-API-Key")
    )
    assert calls == []
    assert sent.status == 204
    assert sent.body == b""
    assert sent.headers[b"access-control-allow-origin"] == ALLOWED.encode()
    assert sent.headers[b"access-control-allow-methods"] == b"GET, POST, OPTIONS"
    assert sent.headers[b"access-control-allow-headers"] == b"content-type, x-api-key"
    assert sent.headers[b"access-control-max-age"] == b"600"
    assert_secured(sent)


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        (b"https://evil.example", b"POST", None),
        (b"https://app.example.com.evil.example", b"POST", None),
        (b"null", b"POST", None),
        (ALLOWED.encode(), b"DELETE", None),
        (ALLOWED.encode(), b"PUT", b"content-type"),
        (ALLOWED.encode(), b"POST", b"content-type, x-evil"),
        (ALLOWED.encode(), b"POST", b"cookie"),
    ],
)
async def test_preflight_is_refused_for_other_origins_methods_and_headers(
    origin: bytes, method: bytes, headers: bytes | None
) -> None:
    sent = await call(cors_stack(), preflight(origin, method, headers))
    assert sent.status == 403
    assert sent.headers[b"content-type"] == b"application/problem+json"
    assert not [k for k in sent.headers if k.startswith(b"access-control-allow")]
    assert_secured(sent)


async def test_options_without_a_requested_method_is_not_a_preflight() -> None:
    seen: list[dict[str, Any]] = []
    sent = await call(
        cors_stack(client_echo_app(seen)),
        http_scope("/x", "OPTIONS", [(b"origin", ALLOWED.encode())]),
    )
    assert len(seen) == 1  # reached the app, and got the simple-request headers
    assert sent.headers[b"access-control-allow-origin"] == ALLOWED.encode()


def test_wildcard_origin_is_refused_without_debug() -> None:
    with pytest.raises(ValueError, match="DEBUG"):
        HttpPolicy(cors_allowed_origins=("*",))
    with pytest.raises(ValueError, match="DEBUG"):
        CorsMiddleware(json_app(), ["https://a.example", " * "])


async def test_wildcard_origin_in_debug_answers_any_origin_with_a_star() -> None:
    app = cors_stack(origins=("*",), debug=True)
    sent = await call(app, http_scope(headers=[(b"origin", b"https://anything.example")]))
    pre = await call(app, preflight(b"https://other.example"))
    assert sent.headers[b"access-control-allow-origin"] == b"*"
    assert pre.status == 204
    assert pre.headers[b"access-control-allow-origin"] == b"*"
