# SPDX-License-Identifier: Apache-2.0
"""One access-log line per request, through the app's real JSON log pipeline."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.record import (
    RecordMiddleware,
    route_templates,
)
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.types import Receive, Scope, Send
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.serving.logging import configure_logging
from tests.unit.asgi._support import json_app
from tests.unit.asgi_helpers import call, call_gone, http_scope


@pytest.fixture
def access_log() -> Iterator[Any]:
    """The app's real JSON log pipeline, into a buffer; returns a reader of access events."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("info", "json")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)  # not capsys: its stream changes between test phases

    def read() -> list[dict[str, Any]]:
        lines = [json.loads(ln) for ln in buffer.getvalue().splitlines() if ln.strip()]
        return [e for e in lines if e.get("logger") == "genkit_endpoints.access"]

    yield read
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


async def test_access_log_line_has_every_field(access_log: Any) -> None:
    body = b'{"joke": "x"}'
    app = build_stack(json_app(body), HttpPolicy(), route_template=route_templates(["/tell-joke"]))
    scope = http_scope("/tell-joke", "POST", headers=[(b"x-request-id", b"rid-42")])
    scope["client"] = ("192.0.2.10", 5555)
    await call(app, scope, b"{}")
    (event,) = access_log()
    assert event["event"] == "request"
    assert event["level"] == "info"
    assert event["method"] == "POST"
    assert event["route"] == "/tell-joke"
    assert event["status"] == 200
    assert event["bytes"] == len(body)
    assert event["client_ip"] == "192.0.2.10"
    assert event["request_id"] == "rid-42"
    assert isinstance(event["duration_ms"], int | float)
    assert 0 <= event["duration_ms"] < 5_000


async def test_access_log_names_the_route_template_never_the_raw_path(access_log: Any) -> None:
    template = route_templates(["/chat"], prefixes=[("/flows/", "/flows/{name}")])
    app = build_stack(json_app(), HttpPolicy(), route_template=template)
    for path in ("/flows/tell_joke", "/secret/token=abc", "/chat"):
        scope = http_scope(path)
        scope["query_string"] = b"api_key=sk-123"
        await call(app, scope)
    events = access_log()
    assert [e["route"] for e in events] == ["/flows/{name}", "<unmatched>", "/chat"]
    assert "sk-123" not in json.dumps(events)
    assert "token=abc" not in json.dumps(events)


async def test_access_log_status_is_what_a_rejecting_layer_sent(access_log: Any) -> None:
    app = build_stack(json_app(), HttpPolicy(max_body_size=10))
    scope = http_scope("/x", "POST", headers=[(b"content-length", b"11")])
    sent = await call(app, scope, b"x" * 11)
    (event,) = access_log()
    assert sent.status == event["status"] == 413
    assert event["bytes"] == len(sent.body)


async def test_access_log_uses_the_forwarded_client(access_log: Any) -> None:
    policy = HttpPolicy(trusted_proxies=("127.0.0.1/32",))
    scope = http_scope(headers=[(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7")])
    await call(build_stack(json_app(), policy), scope)
    (event,) = access_log()
    assert event["client_ip"] == "203.0.113.7"


async def test_access_log_says_499_when_the_client_left_before_a_response(access_log: Any) -> None:
    async def waits_for_body(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "http.disconnect"  # nothing to answer to

    sent = await call_gone(RecordMiddleware(waits_for_body, route_templates([])), http_scope())
    assert sent.messages == []
    (event,) = access_log()
    assert event["status"] == 499
    assert event["bytes"] == 0


async def test_access_log_logs_a_cancelled_request_as_499(access_log: Any) -> None:
    started = asyncio.Event()

    async def forever(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(call(RecordMiddleware(forever, route_templates([])), http_scope()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (event,) = access_log()
    assert event["status"] == 499


async def test_access_log_is_silent_above_info(access_log: Any) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("genkit_endpoints").setLevel(logging.WARNING)
    try:
        await call(RecordMiddleware(json_app(), route_templates([])), http_scope())
    finally:
        logging.getLogger("genkit_endpoints").setLevel(logging.NOTSET)
    assert access_log() == []


async def test_access_log_names_the_authenticated_principal_never_the_key(
    access_log: Any,
) -> None:
    key = "alice-key-0123456789abcdef"
    app = build_stack(
        json_app(),
        HttpPolicy(),
        route_template=route_templates(["/tell-joke"]),
        api_keys=ApiKeyring.parse(f"alice:{key}"),
    )
    await call(app, http_scope("/tell-joke", headers=[(b"x-api-key", key.encode())]))
    await call(app, http_scope("/tell-joke"))  # refused: no key, no principal
    authed, refused = access_log()
    assert (authed["status"], authed["principal"]) == (200, "alice")
    assert (refused["status"], refused["principal"]) == (401, None)
    assert key not in json.dumps([authed, refused])
