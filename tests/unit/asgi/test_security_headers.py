# SPDX-License-Identifier: Apache-2.0
"""Security headers on every response, including errors from every layer of the stack."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.request_id import RequestIdMiddleware
from genkit_endpoints.http.middleware.security_headers import SecurityHeadersMiddleware
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from tests.unit.asgi._support import assert_secured, header_values, json_app
from tests.unit.asgi_helpers import call, http_scope


async def test_security_headers_on_a_plain_response_and_no_server_header() -> None:
    app = json_app(headers=[(b"content-type", b"application/json"), (b"Server", b"uvicorn")])
    sent = await call(RequestIdMiddleware(SecurityHeadersMiddleware(app)), http_scope())
    assert_secured(sent)
    assert header_values(sent, b"cache-control") == [b"no-store"]
    assert b"strict-transport-security" not in sent.headers


@pytest.mark.parametrize("policy", [b"no-cache", b"public, max-age=60"])
async def test_a_cache_policy_chosen_by_the_response_is_kept(policy: bytes) -> None:
    app = json_app(headers=[(b"content-type", b"text/event-stream"), (b"Cache-Control", policy)])
    sent = await call(SecurityHeadersMiddleware(app), http_scope())
    assert header_values(sent, b"cache-control") == [policy]


async def test_hsts_only_when_the_scheme_is_https() -> None:
    https = http_scope()
    https["scheme"] = "https"
    plain = await call(SecurityHeadersMiddleware(json_app()), http_scope())
    secure = await call(SecurityHeadersMiddleware(json_app(), hsts_max_age=600), https)
    off = await call(SecurityHeadersMiddleware(json_app(), hsts_max_age=0), https)
    assert b"strict-transport-security" not in plain.headers
    assert secure.headers[b"strict-transport-security"] == b"max-age=600; includeSubDomains"
    assert b"strict-transport-security" not in off.headers


async def test_debug_relaxes_the_csp_for_the_docs_ui_only() -> None:
    sent = await call(SecurityHeadersMiddleware(json_app(), debug=True), http_scope())
    csp = sent.headers[b"content-security-policy"]
    assert b"default-src 'self'" in csp
    assert b"https://cdn.jsdelivr.net" in csp
    assert b"frame-ancestors 'none'" in csp
    assert sent.headers[b"x-frame-options"] == b"DENY"


async def _boom(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("internal detail")


async def _blocked(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(60)


@pytest.mark.parametrize(
    ("app", "policy", "scope", "body", "status"),
    [
        (_boom, HttpPolicy(), http_scope(), b"", 500),
        (
            json_app(),
            HttpPolicy(max_body_size=4),
            http_scope("/x", "POST", [(b"content-length", b"5")]),
            b"12345",
            413,
        ),
        (_blocked, HttpPolicy(request_timeout=0.05), http_scope(), b"", 504),
        (
            json_app(),
            HttpPolicy(trusted_hosts=("api.example.com",)),
            http_scope(headers=[(b"host", b"evil.example.com")]),
            b"",
            400,
        ),
        (
            json_app(),
            HttpPolicy(cors_allowed_origins=("https://app.example.com",)),
            http_scope(
                "/x",
                "OPTIONS",
                [(b"origin", b"https://evil.example"), (b"access-control-request-method", b"POST")],
            ),
            b"",
            403,
        ),
    ],
    ids=["envelope-500", "413", "504", "host-400", "cors-403"],
)
async def test_errors_from_every_layer_carry_the_security_headers(
    app: ASGIApp, policy: HttpPolicy, scope: dict[str, Any], body: bytes, status: int
) -> None:
    sent = await asyncio.wait_for(call(build_stack(app, policy), scope, body), 5)
    assert sent.status == status
    assert sent.headers[b"content-type"] == b"application/problem+json"
    assert_secured(sent)
    assert header_values(sent, b"cache-control") == [b"no-store"]
    problem = json.loads(sent.body)
    assert problem["status"] == status
    assert problem["request_id"] == sent.headers[b"x-request-id"].decode()
    assert "internal detail" not in sent.body.decode()


async def test_the_503_of_the_concurrency_limit_carries_the_security_headers() -> None:
    release = asyncio.Event()

    async def held(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        await json_app()(scope, receive, send)

    app = build_stack(held, HttpPolicy(max_concurrent_requests=1))
    first = asyncio.create_task(call(app, http_scope()))
    await asyncio.sleep(0)
    sent = await asyncio.wait_for(call(app, http_scope()), 2)
    release.set()
    await first
    assert sent.status == 503
    assert sent.headers[b"retry-after"] == b"1"
    assert_secured(sent)
