# SPDX-License-Identifier: Apache-2.0
"""The audit log on REST: one JSON line per request, written by the request record layer.

First the record middleware and ``AuditLog`` alone (fields, order, types, the status a
rejecting layer sent, nothing secret), then the service built from settings the way an
operator configures it, whose real layers fill the line: flow, cache, rate limit,
principal, model and tokens.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from endpoints_hello.app import APP
from genkit_endpoints.core.context import RequestRecord, current_record, record_var
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.record import RecordMiddleware, route_templates
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from genkit_endpoints.security.keys import ApiKeyring
from genkit_endpoints.serving.app import create_service
from genkit_endpoints.telemetry.audit import AuditLog, AuditSinkError, open_audit_log
from tests.unit.asgi_helpers import call, call_gone, http_scope, lifespan

FIELDS = [
    "time", "event", "request_id", "trace_id", "principal", "transport", "method", "route",
    "status", "client_ip", "bytes_in", "bytes_out", "flow", "duration_ms", "cache",
    "rate_limit", "model", "input_tokens", "output_tokens",
]  # fmt: skip
NOW = datetime(2025, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
KEY = "alice-key-0123456789abcdef"
OTHER_KEY = "bob-key-fedcba9876543210"
JSON = (b"content-type", b"application/json")


def audit_to(buffer: io.BytesIO) -> AuditLog:
    return AuditLog(buffer, clock=lambda: NOW)


def lines(buffer: io.BytesIO) -> list[dict[str, Any]]:
    raw = buffer.getvalue()
    assert raw.endswith(b"\n") or not raw
    return [json.loads(line) for line in raw.splitlines()]


def flow_like_app(body: bytes = b'{"joke": "x"}') -> ASGIApp:
    """Reads the request body and notes on the record what the inner layers would: the
    flow, the cache result, the rate-limit decision, the model and its usage."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        record = current_record()
        assert record is not None
        record.flow = "tell_joke"
        record.cache = "miss"
        record.rate_limit = "allowed"
        record.model = "offline/default"
        record.add_tokens(12, 30)
        record.add_tokens(3, 4)  # a tool loop's second model response
        await send({"type": "http.response.start", "status": 200, "headers": [JSON]})
        await send({"type": "http.response.body", "body": body})

    return app


async def test_an_audit_line_has_every_field_once_in_a_fixed_order() -> None:
    buffer = io.BytesIO()
    response = b'{"joke": "x"}'
    app = build_stack(
        flow_like_app(response),
        HttpPolicy(),
        route_template=route_templates(["/tell-joke"]),
        audit=audit_to(buffer),
    )
    scope = http_scope("/tell-joke", "POST", [JSON, (b"x-request-id", b"rid-42")])
    scope["client"] = ("192.0.2.10", 5555)
    request = b'{"name": "Ada"}'
    sent = await call(app, scope, request)
    (line,) = lines(buffer)
    assert list(line) == FIELDS
    duration = line.pop("duration_ms")
    assert isinstance(duration, float)
    assert duration >= 0
    assert line == {
        "time": "2025-01-02T03:04:05.678+00:00",
        "event": "audit",
        "request_id": "rid-42",
        "trace_id": None,
        "principal": None,
        "transport": "http",
        "method": "POST",
        "route": "/tell-joke",
        "status": 200,
        "client_ip": "192.0.2.10",
        "bytes_in": len(request),
        "bytes_out": len(sent.body),
        "flow": "tell_joke",
        "cache": "miss",
        "rate_limit": "allowed",
        "model": "offline/default",
        "input_tokens": 15,
        "output_tokens": 34,
    }
    assert record_var.get() is None  # the request's record does not outlive it


async def test_the_route_is_the_template_never_the_raw_path_or_query() -> None:
    buffer = io.BytesIO()
    template = route_templates(["/chat"], prefixes=[("/flows/", "/flows/{name}")])
    audit = audit_to(buffer)
    app = build_stack(flow_like_app(), HttpPolicy(), route_template=template, audit=audit)
    for path in ("/flows/tell_joke", "/secret/token=abc", "/chat"):
        scope = http_scope(path, "POST", [JSON])
        scope["query_string"] = b"api_key=sk-live-123456789&q=hunter2"
        await call(app, scope, b"{}")
    assert [line["route"] for line in lines(buffer)] == ["/flows/{name}", "<unmatched>", "/chat"]
    for leak in (b"sk-live", b"hunter2", b"token=abc", b"/secret"):
        assert leak not in buffer.getvalue()


async def test_rejections_are_audited_with_the_status_sent_and_never_the_key() -> None:
    buffer = io.BytesIO()
    app = build_stack(
        flow_like_app(),
        HttpPolicy(max_body_size=10),
        route_template=route_templates(["/tell-joke"]),
        api_keys=ApiKeyring.parse(f"alice:{KEY}"),
        audit=audit_to(buffer),
    )
    bearer = (b"authorization", f"Bearer {KEY}".encode())
    ok = await call(app, http_scope("/tell-joke", "POST", [JSON, bearer]), b"{}")
    wrong = await call(app, http_scope("/tell-joke", "POST", [JSON, (b"x-api-key", b"x" * 20)]))
    big = [JSON, bearer, (b"content-length", b"11")]
    too_big = await call(app, http_scope("/tell-joke", "POST", big), b"x" * 11)
    assert [ok.status, wrong.status, too_big.status] == [200, 401, 413]
    authed, refused, oversized = lines(buffer)
    assert (authed["status"], authed["principal"], authed["flow"]) == (200, "alice", "tell_joke")
    assert (refused["status"], refused["principal"], refused["flow"]) == (401, None, None)
    # Refused on its declared length, before the key was looked at: nobody is named.
    assert (oversized["status"], oversized["principal"], oversized["flow"]) == (413, None, None)
    assert KEY.encode() not in buffer.getvalue()
    assert b"Bearer" not in buffer.getvalue()
    assert b"authorization" not in buffer.getvalue()


async def test_a_client_that_left_is_audited_as_499() -> None:
    buffer = io.BytesIO()

    async def waits_for_body(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.disconnect"

    middleware = RecordMiddleware(waits_for_body, route_templates([]), audit=audit_to(buffer))
    await call_gone(middleware, http_scope())
    (line,) = lines(buffer)
    assert (line["status"], line["bytes_out"], line["bytes_in"]) == (499, 0, 0)


async def test_a_failed_write_is_logged_and_the_request_is_unharmed() -> None:
    broken = io.BytesIO()
    broken.close()  # writes raise, as on a full disk
    middleware = RecordMiddleware(flow_like_app(), route_templates([]), audit=audit_to(broken))
    with structlog.testing.capture_logs() as logs:
        sent = await call(middleware, http_scope("/x", "POST"), b"{}")
    assert sent.status == 200
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["audit_write_failed"]
    assert record_var.get() is None


def test_lines_written_by_default_carry_the_time_now() -> None:
    buffer = io.BytesIO()
    before = datetime.now(UTC).replace(microsecond=0)
    AuditLog(buffer).http(RequestRecord(), method="GET", route="/health", status=200,
                          seconds=0.001, client_ip=None, bytes_in=0, bytes_out=2)  # fmt: skip
    after = datetime.now(UTC)
    (line,) = lines(buffer)
    assert before <= datetime.fromisoformat(line["time"]) <= after


def test_the_sinks(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert open_audit_log("off") is None
    path = tmp_path / "audit.log"
    path.write_bytes(b'{"earlier": true}\n')
    for _ in range(2):  # appended, never truncated: a restart keeps the history
        log = open_audit_log(str(path))
        assert log is not None
        log.http(
            RequestRecord(),
            method="GET",
            route="/health",
            status=200,
            seconds=0.001,
            client_ip=None,
            bytes_in=0,
            bytes_out=2,
        )
        log.close()
    earlier, first, second = path.read_bytes().splitlines()
    assert json.loads(earlier) == {"earlier": True}
    assert json.loads(first)["route"] == json.loads(second)["route"] == "/health"
    stdout = open_audit_log("stdout")
    assert stdout is not None
    stdout.rpc(RequestRecord(), method="/pkg.S/M", code="INTERNAL", seconds=0.0, client_ip="::1")
    stdout.close()  # not ours to close
    (out,) = capfd.readouterr().out.splitlines()
    assert {k: json.loads(out)[k] for k in ("transport", "status", "grpc_code")} == {
        "transport": "grpc",
        "status": 13,
        "grpc_code": "INTERNAL",
    }


def test_a_file_that_cannot_be_opened_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(AuditSinkError) as info:
        open_audit_log(str(tmp_path))  # a directory
    message = str(info.value)
    assert message.startswith("invalid setting AUDIT_LOG: cannot append to ")
    assert "\n" not in message


# The service as the settings build it: the kit's real layers fill the audit line.

ALICE, BOB = "alice", "bob"
KEYS = f"{ALICE}:{KEY},{BOB}:{OTHER_KEY}"
TRANSLATE = b'{"text": "The lighthouse at dawn", "targetLanguage": "French"}'


async def test_the_service_fills_the_line_from_its_layers(tmp_path: Path) -> None:
    """Metrics off on purpose: the model's usage must reach the audit line without them."""
    audit_file = tmp_path / "audit.log"
    settings = APP.load_settings(
        audit_log=str(audit_file),
        api_keys=KEYS,
        rate_limit_default="2/minute",
        cache_enabled=True,
        metrics_enabled=False,
        grpc_enabled=False,
    )
    service = create_service(APP, settings)

    def post(key: str | None, rid: str, body: bytes = TRANSLATE) -> dict[str, Any]:
        headers = [JSON, (b"x-request-id", rid.encode())]
        if key is not None:
            headers.append((b"x-api-key", key.encode()))
        return http_scope("/translate", "POST", headers)

    async with lifespan(service.asgi):
        statuses = [
            (await call(service.asgi, post(KEY, "miss"), TRANSLATE)).status,
            (await call(service.asgi, post(KEY, "hit"), TRANSLATE)).status,
            (await call(service.asgi, post(KEY, "limited"), TRANSLATE)).status,
            (await call(service.asgi, post(None, "nokey"), TRANSLATE)).status,
            (await call(service.asgi, post(OTHER_KEY, "bad"), b"{")).status,
        ]
    assert statuses == [200, 200, 429, 401, 422]
    raw = audit_file.read_bytes()
    by_id = {line["request_id"]: line for line in map(json.loads, raw.splitlines())}
    assert sorted(by_id) == sorted(["miss", "hit", "limited", "nokey", "bad"])  # one each
    miss, hit, limited = by_id["miss"], by_id["hit"], by_id["limited"]
    assert (miss["principal"], miss["flow"], miss["cache"], miss["rate_limit"]) == (
        ALICE,
        "translate_text",
        "miss",
        "allowed",
    )
    assert miss["model"] == "offline/default"
    assert miss["input_tokens"] > 0
    assert miss["output_tokens"] > 0
    assert (hit["cache"], hit["model"], hit["input_tokens"]) == ("hit", None, None)
    assert (limited["status"], limited["rate_limit"], limited["flow"]) == (429, "limited", None)
    assert (by_id["nokey"]["status"], by_id["nokey"]["principal"]) == (401, None)
    assert (by_id["bad"]["status"], by_id["bad"]["principal"]) == (422, BOB)
    assert {line["route"] for line in by_id.values()} == {"/translate"}
    for secret in (KEY.encode(), OTHER_KEY.encode(), b"lighthouse", b"French"):
        assert secret not in raw
