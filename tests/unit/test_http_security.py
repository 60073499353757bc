"""The HTTP security middleware (SPEC §4.1, issue 4), each layer on a tiny raw ASGI app.

No framework: the apps below speak ASGI messages directly, so every assertion is about
what the middleware itself does with the bytes.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_lib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from genkit_endpoints.asgi.access_log import AccessLogMiddleware, route_templates
from genkit_endpoints.asgi.body_limit import BodyLimitMiddleware
from genkit_endpoints.asgi.concurrency import ConcurrencyLimitMiddleware
from genkit_endpoints.asgi.cors import CorsMiddleware
from genkit_endpoints.asgi.errors import ErrorEnvelopeMiddleware
from genkit_endpoints.asgi.gzip import GzipMiddleware
from genkit_endpoints.asgi.policy import HttpPolicy
from genkit_endpoints.asgi.proxy import ProxyHeadersMiddleware, TrustedProxies, parse_networks
from genkit_endpoints.asgi.request_id import RequestIdMiddleware
from genkit_endpoints.asgi.security_headers import SecurityHeadersMiddleware
from genkit_endpoints.asgi.stack import build_stack
from genkit_endpoints.asgi.trusted_host import TrustedHostMiddleware
from genkit_endpoints.asgi.types import ASGIApp, Receive, Scope, Send
from genkit_endpoints.logging import configure_logging
from tests.unit.asgi_helpers import Captured, call, call_chunks, call_gone, http_scope

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


# --- client identity behind proxies -------------------------------------------------


def proxied(
    xff: list[bytes] | None = None,
    *,
    peer: str = "127.0.0.1",
    trusted: tuple[str, ...] = ("127.0.0.1/32", "10.0.0.0/8"),
    proto: bytes | None = None,
) -> tuple[ProxyHeadersMiddleware, list[dict[str, Any]], dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    headers = [(b"x-forwarded-for", v) for v in xff or []]
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto))
    scope = http_scope(headers=headers)
    scope["client"] = (peer, 4321)
    app = ProxyHeadersMiddleware(client_echo_app(seen), TrustedProxies(parse_networks(trusted)))
    return app, seen, scope


@pytest.mark.parametrize(
    ("xff", "client"),
    [
        # The left hops are whatever the client wrote: never believed.
        ([b"1.2.3.4, 203.0.113.7"], "203.0.113.7"),
        ([b"6.6.6.6, 203.0.113.7, 10.0.0.2"], "203.0.113.7"),
        # Several headers are one list, in order.
        ([b"6.6.6.6", b"203.0.113.7, 10.1.2.3"], "203.0.113.7"),
        # Every hop a trusted proxy: the farthest one is the best we know.
        ([b"10.0.0.3, 10.0.0.2"], "10.0.0.3"),
        # Garbage at the right: stop there, the peer is the last trustworthy answer.
        ([b"203.0.113.9, unknown"], "127.0.0.1"),
        ([b"203.0.113.9, 10.0.0.2, 1.2.3.4:80"], "127.0.0.1"),
        ([b"<script>, 203.0.113.9"], "203.0.113.9"),
        ([b"203.0.113.9, 10.0.0.2, not-an-ip"], "127.0.0.1"),
        # Empty entries are skipped, bracketed IPv6 is unwrapped.
        ([b", , 203.0.113.9,"], "203.0.113.9"),
        ([b"[2001:db8::5]"], "2001:db8::5"),
    ],
)
async def test_client_is_the_rightmost_untrusted_forwarded_hop(
    xff: list[bytes], client: str
) -> None:
    app, seen, scope = proxied(xff)
    await call(app, scope)
    assert seen[0]["client"][0] == client


async def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    app, seen, scope = proxied([b"203.0.113.7"], peer="198.51.100.1", proto=b"https")
    await call(app, scope)
    assert seen == [{"client": ("198.51.100.1", 4321), "scheme": "http"}]


async def test_without_trusted_proxies_forwarded_headers_are_ignored_by_the_stack() -> None:
    seen: list[dict[str, Any]] = []
    headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    sent = await call(build_stack(client_echo_app(seen), HttpPolicy()), http_scope(headers=headers))
    assert seen == [{"client": ("127.0.0.1", 1234), "scheme": "http"}]
    assert b"strict-transport-security" not in sent.headers


async def test_ipv6_peer_in_a_trusted_network_is_believed() -> None:
    app, seen, scope = proxied([b"203.0.113.7"], peer="::1", trusted=("::1/128",))
    await call(app, scope)
    assert seen[0]["client"][0] == "203.0.113.7"


async def test_ipv4_mapped_ipv6_peer_matches_its_ipv4_network() -> None:
    app, seen, scope = proxied([b"2001:db8::9"], peer="::ffff:127.0.0.1", trusted=("127.0.0.1/32",))
    await call(app, scope)
    assert seen[0]["client"][0] == "2001:db8::9"


async def test_trusted_peer_without_forwarded_for_stays_the_client() -> None:
    app, seen, scope = proxied(None)
    await call(app, scope)
    assert seen[0]["client"] == ("127.0.0.1", 4321)


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [
        (b"https", "https"),
        (b"HTTPS", "https"),
        (b"http, https", "https"),
        (b"https, http", "http"),
        (b"javascript", "http"),
        (b"", "http"),
    ],
)
async def test_forwarded_proto_from_a_trusted_peer_sets_the_scheme(
    proto: bytes, scheme: str
) -> None:
    app, seen, scope = proxied([b"203.0.113.7"], proto=proto)
    await call(app, scope)
    assert seen[0]["scheme"] == scheme


async def test_forwarded_https_from_a_trusted_proxy_turns_on_hsts() -> None:
    policy = HttpPolicy(trusted_proxies=("127.0.0.1/32",))
    scope = http_scope(headers=[(b"x-forwarded-proto", b"https")])
    sent = await call(build_stack(json_app(), policy), scope)
    assert sent.headers[b"strict-transport-security"] == b"max-age=31536000; includeSubDomains"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-a-cidr", "300.1.1.1"])
def test_a_bad_trusted_proxy_entry_fails_at_start_up(bad: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        HttpPolicy(trusted_proxies=("127.0.0.1", bad))
    with pytest.raises(ValueError, match=r"\S"):
        parse_networks([bad])


# --- request id -----------------------------------------------------------------------


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


# --- access log ---------------------------------------------------------------------


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

    sent = await call_gone(AccessLogMiddleware(waits_for_body, route_templates([])), http_scope())
    assert sent.messages == []
    (event,) = access_log()
    assert event["status"] == 499
    assert event["bytes"] == 0


async def test_access_log_logs_a_cancelled_request_as_499(access_log: Any) -> None:
    started = asyncio.Event()

    async def forever(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(
        call(AccessLogMiddleware(forever, route_templates([])), http_scope())
    )
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
        await call(AccessLogMiddleware(json_app(), route_templates([])), http_scope())
    finally:
        logging.getLogger("genkit_endpoints").setLevel(logging.NOTSET)
    assert access_log() == []


# --- security headers ---------------------------------------------------------------


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


# --- CORS ---------------------------------------------------------------------------

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


# --- trusted hosts ------------------------------------------------------------------


async def host_status(hosts: tuple[str, ...], *values: bytes) -> tuple[int, bytes]:
    scope = http_scope(headers=[(b"host", v) for v in values])
    sent = await call(RequestIdMiddleware(TrustedHostMiddleware(json_app(), hosts)), scope)
    return sent.status, sent.body


@pytest.mark.parametrize(
    "host",
    [
        b"api.example.com",
        b"API.Example.COM:8443",
        b"a.svc.example.com",
        b"x.y.svc.example.com:80",
        b"[::1]:8000",
        b"[::1]",
        b"127.0.0.1:8080",
    ],
)
async def test_allowlisted_hosts_pass_with_or_without_a_port(host: bytes) -> None:
    hosts = ("api.example.com", "*.svc.example.com", "::1", "127.0.0.1")
    assert (await host_status(hosts, host))[0] == 200


async def test_a_bracketed_ipv6_allowlist_entry_matches_its_literal() -> None:
    assert (await host_status(("[::1]",), b"[::1]:8000"))[0] == 200


@pytest.mark.parametrize(
    "host",
    [
        b"evil.example.com",
        b"svc.example.com",  # the apex is not a subdomain of itself
        b"evilsvc.example.com",
        b"api.example.com.evil.example",
        b"[::2]:8000",
        b"",
    ],
)
async def test_other_hosts_are_400_with_an_allowlist(host: bytes) -> None:
    status, body = await host_status(("api.example.com", "*.svc.example.com", "::1"), host)
    assert status == 400
    problem = json.loads(body)
    assert problem["detail"] == "The Host header is not allowed."
    if host:
        assert host.decode() not in body.decode()  # never reflected


@pytest.mark.parametrize(
    "host",
    [
        b"a b",
        b"evil.com/path",
        b"user@evil.com",
        b"host:80:90",
        b"host:port",
        b"ok.com\n",
        b"[::1",
        b"\xff.example",
    ],
)
@pytest.mark.parametrize("hosts", [(), ("*",)], ids=["no-allowlist", "star"])
async def test_malformed_host_is_400_even_without_an_allowlist(
    hosts: tuple[str, ...], host: bytes
) -> None:
    status, body = await host_status(hosts, host)
    assert status == 400
    assert json.loads(body)["detail"] == "The Host header is malformed."


async def test_two_host_headers_are_400() -> None:
    status, body = await host_status((), b"a.example", b"b.example")
    assert status == 400
    assert json.loads(body)["detail"] == "The Host header is malformed."
    assert (await host_status(("a.example",), b"a.example", b"a.example"))[0] == 400


async def test_missing_host_is_allowed_only_without_an_allowlist() -> None:
    assert (await host_status(()))[0] == 200
    assert (await host_status(("api.example.com",)))[0] == 400


# --- concurrency limit --------------------------------------------------------------


class Gate:
    """An app whose requests wait until released (or raise, when told to)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrivals: asyncio.Queue[str] = asyncio.Queue()
        self.fail = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.arrivals.put_nowait(scope["path"])
        if scope["path"] not in ("/health", "/ready"):
            await self.release.wait()
        if self.fail:
            raise RuntimeError("handler failed")
        await json_app()(scope, receive, send)


async def fill(app: ASGIApp, gate: Gate, n: int) -> list[asyncio.Task[Captured]]:
    tasks = [asyncio.create_task(call(app, http_scope("/work"))) for _ in range(n)]
    async with asyncio.timeout(2):
        for _ in range(n):
            await gate.arrivals.get()
    return tasks


async def test_above_the_limit_requests_get_503_at_once_and_probes_still_pass() -> None:
    gate = Gate()
    app = ErrorEnvelopeMiddleware(
        ConcurrencyLimitMiddleware(gate, 3, exempt_paths={"/health", "/ready"})
    )
    held = await fill(app, gate, 3)
    over = await asyncio.wait_for(call(app, http_scope("/work")), 1)
    health = await asyncio.wait_for(call(app, http_scope("/health")), 1)
    ready = await asyncio.wait_for(call(app, http_scope("/ready")), 1)
    assert over.status == 503
    assert over.headers[b"retry-after"] == b"1"
    assert json.loads(over.body)["status"] == 503
    assert health.status == ready.status == 200
    gate.release.set()
    assert [t.status for t in await asyncio.gather(*held)] == [200, 200, 200]
    assert (await call(app, http_scope("/work"))).status == 200


async def test_slots_are_freed_when_handlers_fail() -> None:
    gate = Gate()
    limited = ConcurrencyLimitMiddleware(gate, 2)
    app = ErrorEnvelopeMiddleware(limited)
    held = await fill(app, gate, 2)
    gate.fail = True
    gate.release.set()
    assert [t.status for t in await asyncio.gather(*held)] == [500, 500]
    assert limited.in_flight == 0
    gate.fail = False
    assert (await call(app, http_scope("/work"))).status == 200


async def test_slots_are_freed_when_requests_are_cancelled() -> None:
    gate = Gate()
    limited = ConcurrencyLimitMiddleware(gate, 2)
    held = await fill(limited, gate, 2)
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)
    assert limited.in_flight == 0
    gate.release.set()
    assert (await call(limited, http_scope("/work"))).status == 200


def test_concurrency_limit_below_one_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyLimitMiddleware(json_app(), 0)
    with pytest.raises(ValueError, match="at least 1"):
        HttpPolicy(max_concurrent_requests=0)


# --- body limit ---------------------------------------------------------------------


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


# --- gzip ---------------------------------------------------------------------------

BIG = json.dumps({"items": [{"n": i, "text": "lorem ipsum " * 3} for i in range(200)]}).encode()


def gz(accept: bytes | None = b"gzip, deflate, br") -> dict[str, Any]:
    return http_scope(headers=[] if accept is None else [(b"accept-encoding", accept)])


async def test_small_json_is_not_compressed() -> None:
    sent = await call(GzipMiddleware(json_app(b'{"a": 1}'), 1024), gz())
    assert b"content-encoding" not in sent.headers
    assert sent.body == b'{"a": 1}'


async def test_large_json_is_compressed_and_decompresses_to_the_original() -> None:
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(BIG)).encode())]
    sent = await call(GzipMiddleware(json_app(BIG, headers=hdrs), 1024), gz())
    assert sent.headers[b"content-encoding"] == b"gzip"
    assert sent.headers[b"vary"] == b"Accept-Encoding"
    assert header_values(sent, b"content-length") == [str(len(sent.body)).encode()]
    assert len(sent.body) < len(BIG)
    assert gzip_lib.decompress(sent.body) == BIG


async def test_a_json_body_streamed_in_parts_is_compressed_as_it_streams() -> None:
    parts = [BIG[i : i + 500] for i in range(0, len(BIG), 500)]

    async def streamed(scope: Scope, receive: Receive, send: Send) -> None:
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
        await send(start)
        for i, part in enumerate(parts):
            await send(
                {"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1}
            )

    sent = await call(GzipMiddleware(streamed, 1024), gz())
    assert sent.headers[b"content-encoding"] == b"gzip"
    assert b"content-length" not in sent.headers
    assert gzip_lib.decompress(sent.body) == BIG


async def test_large_problem_json_is_compressed() -> None:
    problem = json.dumps({"status": 422, "errors": [{"field": f"f{i}"} for i in range(300)]})
    app = json_app(problem.encode(), headers=[(b"content-type", b"application/problem+json")])
    sent = await call(GzipMiddleware(app, 1024), gz(b"gzip"))
    assert sent.headers[b"content-encoding"] == b"gzip"
    assert gzip_lib.decompress(sent.body) == problem.encode()


async def test_event_streams_are_never_compressed() -> None:
    frames = [b"data: " + b"x" * 2000 + b"\n\n"] * 3

    async def sse(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for frame in frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    sent = await call(build_stack(sse, HttpPolicy(gzip_min_size=10)), gz())
    assert b"content-encoding" not in sent.headers
    assert sent.body == b"".join(frames)
    assert header_values(sent, b"cache-control") == [b"no-cache"]
    # Each frame went out as it was produced, not buffered into one message.
    assert len([m for m in sent.messages if m.get("body")]) == 3


@pytest.mark.parametrize(
    "accept", [None, b"gzip;q=0", b"identity", b"br", b"gzip;q=0.000, deflate", b"gzip;q=abc"]
)
async def test_clients_that_refuse_gzip_get_the_plain_body(accept: bytes | None) -> None:
    sent = await call(GzipMiddleware(json_app(BIG), 1024), gz(accept))
    assert b"content-encoding" not in sent.headers
    assert sent.body == BIG


@pytest.mark.parametrize("accept", [b"GZIP", b"deflate, gzip;q=0.5", b"*", b"br;q=1, gzip ; q=1.0"])
async def test_gzip_accepted_in_any_spelling_compresses(accept: bytes) -> None:
    sent = await call(GzipMiddleware(json_app(BIG), 1024), gz(accept))
    assert gzip_lib.decompress(sent.body) == BIG


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"text/plain")],
        [(b"content-type", b"application/json"), (b"content-encoding", b"br")],
    ],
    ids=["not-json", "already-encoded"],
)
async def test_other_bodies_are_left_alone(headers: list[tuple[bytes, bytes]]) -> None:
    sent = await call(GzipMiddleware(json_app(BIG, headers=headers), 1024), gz())
    assert sent.body == BIG
    assert header_values(sent, b"content-encoding") == [
        v for k, v in headers if k == b"content-encoding"
    ]


async def test_gzip_min_size_zero_turns_compression_off() -> None:
    sent = await call(build_stack(json_app(BIG), HttpPolicy(gzip_min_size=0)), gz())
    assert b"content-encoding" not in sent.headers
    assert sent.body == BIG


async def test_compressed_responses_still_carry_the_security_headers() -> None:
    sent = await call(build_stack(json_app(BIG), HttpPolicy()), gz())
    assert sent.headers[b"content-encoding"] == b"gzip"
    assert_secured(sent)
