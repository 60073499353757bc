# SPDX-License-Identifier: Apache-2.0
"""Tiny raw ASGI apps and header checks shared by the middleware tests.

No framework: the apps below speak ASGI messages directly, so every assertion is about
what the middleware itself does with the bytes.
"""

from __future__ import annotations

from typing import Any

from genkit_endpoints.core.context import current_request_id
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from tests.unit.asgi_helpers import Captured

# Security headers every response carries (values as the `secure` library spells them).
ALWAYS = {
    b"content-security-policy": b"default-src 'none'; frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
}


def assert_secured(sent: Captured) -> None:
    headers = sent.headers
    for name, value in ALWAYS.items():
        assert headers.get(name) == value, name
    assert b"geolocation=()" in headers[b"permissions-policy"]
    assert len(headers[b"x-request-id"]) == 32
    assert b"server" not in headers


def header_values(sent: Captured, name: bytes) -> list[bytes]:
    return [v for k, v in sent.start["headers"] if k.lower() == name]


def json_app(body: bytes = b'{"ok": true}', *, headers: list[tuple[bytes, bytes]] | None = None):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        hdrs = headers if headers is not None else [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": list(hdrs)})
        await send({"type": "http.response.body", "body": body})

    return app


def client_echo_app(seen: list[dict[str, Any]]) -> ASGIApp:
    """Records the client and scheme the app was told about."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append({"client": scope["client"], "scheme": scope["scheme"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def reading_app(bodies: list[bytes], events: list[str]) -> ASGIApp:
    """Reads the whole body like a framework does, then answers 200 (late, if rejected)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "http.disconnect":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    return app


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    rid = current_request_id() or ""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"x-seen", rid.encode())]}
    )
    await send({"type": "http.response.body", "body": b"ok"})
