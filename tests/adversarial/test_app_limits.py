# SPDX-License-Identifier: Apache-2.0
"""Body limits, ``Expect: 100-continue``, deep JSON and hostile request ids, against the
real app on every server: the app-level half of the adversarial corpus.

The body limit is the app's (``BodyLimitMiddleware``), so it must hold whatever the
server does with the bytes: a chunked upload is refused as soon as it crosses the limit,
the connection is closed, and the rest of the body is never read.
"""

from __future__ import annotations

import socket

import pytest

from tests.adversarial._app_support import (
    access_events,
    is_generated_id,
    new_request_id,
    parse_head,
    read_until_closed,
    wait_readable,
)
from tests.adversarial.conftest import HARDENED_ENV, SERVERS, Serve, raw_request
from tests.support.server import ServerProcess

LIMIT = int(HARDENED_ENV.get("MAX_BODY_SIZE", "1048576"))  # the app's default
SLACK = 64 * 1024  # the app may read at most this much past the limit before refusing
POST_HEAD = b"POST /tell-joke HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module", params=SERVERS)
def server_kind(request: pytest.FixtureRequest) -> str:
    """Module scope: the tests run grouped by server, so the shared pool never thrashes."""
    return str(request.param)


@pytest.fixture
def app(serve: Serve, server_kind: str) -> ServerProcess:
    return serve(server_kind, **HARDENED_ENV)


def chunk(size: int) -> bytes:
    return b"%x\r\n" % size + b"x" * size + b"\r\n"


def test_a_chunked_body_is_refused_as_soon_as_it_crosses_the_limit(app: ServerProcess) -> None:
    """Up to the limit at full speed; past it, one 8 KiB chunk at a time, each followed by
    a wait for the answer. The 413 must come before we have sent limit + 64 KiB — the
    server decided without needing more — and the connection must then close without
    the rest of the body (the chunked body is never terminated)."""
    rid = new_request_id("chunked")
    head = POST_HEAD + f"Transfer-Encoding: chunked\r\nX-Request-ID: {rid}\r\n\r\n".encode()
    step = 8192
    answered_at = None
    with socket.create_connection(("127.0.0.1", app.port), timeout=15) as sock:
        sock.sendall(head)
        sent = 0
        while sent < LIMIT:  # all legal so far
            size = min(65536, LIMIT - sent)
            sock.sendall(chunk(size))
            sent += size
        assert not wait_readable(sock, 0.2), "answered before the limit was crossed"
        while sent < LIMIT + 2 * SLACK:
            sock.sendall(chunk(step))
            sent += step
            if wait_readable(sock, 3.0):
                answered_at = sent
                break
        response, closed = read_until_closed(sock, timeout=5)
    assert answered_at is not None, "no answer after limit + 128 KiB"
    assert answered_at <= LIMIT + SLACK, answered_at - LIMIT
    status, headers = parse_head(response)
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-request-id"] == rid
    assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert closed, "the connection stayed open for the rest of the body"
    assert access_events(app, {rid})[rid]["status"] == 413


def test_expect_100_continue_over_the_limit_is_413_without_continue(app: ServerProcess) -> None:
    head = POST_HEAD + f"Content-Length: {LIMIT + 1}\r\nExpect: 100-continue\r\n\r\n".encode()
    got = raw_request(app.port, head, timeout=5)
    assert got.reached_app, got.raw[:300]
    assert [r.status for r in got.responses] == [413], got.raw[:300]
    assert got.closed


def test_expect_100_continue_within_the_limit_continues(app: ServerProcess) -> None:
    body = b'{"name": "Rex"}'
    head = POST_HEAD + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(head)
        interim = b""
        while b"\r\n\r\n" not in interim and wait_readable(sock, 5):
            interim += sock.recv(4096)
        assert parse_head(interim)[0] == 100
        sock.sendall(body)
        final = interim.split(b"\r\n\r\n", 1)[1]
        while b"\r\n\r\n" not in final and wait_readable(sock, 5):
            final += sock.recv(65536)
    assert parse_head(final)[0] == 200


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (nested(5000), 422),  # past every parser's own recursion limit
        (b'{"name": "Rex", "extra": ' + nested(5000) + b"}", 422),
        # Deeper than JSON_MAX_DEPTH (32) but in a field the schema ignores: only the
        # depth limit can refuse it.
        (b'{"name": "Rex", "extra": ' + nested(40) + b"}", 422),
        (b'{"name": "Rex", "extra": ' + nested(20) + b"}", 200),
    ],
    ids=["bare-5000", "field-5000", "ignored-field-40", "ignored-field-20"],
)
def test_deeply_nested_json_is_422_never_500(app: ServerProcess, body: bytes, status: int) -> None:
    got = raw_request(
        app.port, POST_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body, linger=0.02
    )
    assert got.statuses == [status], got.raw[:500]
    assert got.reached_app
    if status == 422:
        assert got.header("content-type") == "application/problem+json"


@pytest.mark.parametrize(
    ("value", "as_parsed"),
    [
        (b"abc\rInjected: 1", None),
        # granian and hypercorn end a header line at a bare LF (RFC 9112 section 2.2 lets
        # a recipient do so): the app then gets `X-Request-ID: abc` and a separate request
        # header `Injected: 1`. Echoing that well-formed "abc" puts nothing of the line
        # break into the response. uvicorn refuses the head instead.
        (b"abc\nInjected: 1", "abc"),
        (b"abc\r\n Injected: 1", None),  # obs-fold
        (b"a" * 200, None),
        ("caf\u00e9-\u2603".encode(), None),
        (b"caf\xe9", None),
        (b"<script>alert(1)</script>", None),
    ],
    ids=["cr", "lf", "obs-fold", "200-chars", "utf-8", "latin-1", "markup"],
)
def test_a_hostile_request_id_is_never_echoed(
    app: ServerProcess, value: bytes, as_parsed: str | None
) -> None:
    """Either the server's parser refuses the head (400, the app never ran) or the app
    replaces the id with its own; nothing the client wrote comes back."""
    got = raw_request(
        app.port,
        b"GET /health HTTP/1.1\r\nHost: test\r\nX-Request-ID: " + value + b"\r\n\r\n",
        linger=0.02,
    )
    assert got.responses, got.raw[:300]
    if got.reached_app:
        assert got.statuses == [200]
        echoed = got.header("x-request-id")
        assert is_generated_id(echoed) or echoed == as_parsed, got.raw[:300]
    else:
        assert got.statuses == [400], got.raw[:300]
    # Compare whole values, not fragments: the generated id is random hex and may
    # contain short strings such as "caf" by chance.
    assert value not in got.raw
    assert got.raw.isascii()
    assert b"injected" not in got.raw.lower()
    assert b"<script>" not in got.raw


def test_a_well_formed_request_id_of_128_characters_is_echoed(app: ServerProcess) -> None:
    rid = ("Ab0._-" * 22)[:128]
    got = raw_request(
        app.port,
        f"GET /health HTTP/1.1\r\nHost: test\r\nX-Request-ID: {rid}\r\n\r\n".encode(),
        linger=0.02,
    )
    assert got.statuses == [200]
    assert got.header("x-request-id") == rid
