# SPDX-License-Identifier: Apache-2.0
"""Every response carries the security headers and a request id, on all nine stacks.

The full middleware stack in the real process, over real sockets: route answers, framework
errors (404/405/422), middleware rejections (413, CORS 403) and streams alike. One server
per framework-server combination, a few requests each.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.e2e.conftest import stack_args
from tests.support.server import run_server

LIMIT = 4096
ORIGIN = "https://app.example.com"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def assert_secured(server: str, r: httpx.Response, *, cache: str = "no-store") -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, name
    assert "geolocation=()" in r.headers["permissions-policy"]
    assert REQUEST_ID.fullmatch(r.headers["x-request-id"])
    assert r.headers.get_list("cache-control") == [cache]
    assert "strict-transport-security" not in r.headers  # plain http
    if server == "granian":
        # granian 2.x appends its own `server: granian` after the app's headers and has
        # no switch to stop it; a Server header from anything below us is still stripped.
        assert r.headers.get_list("server") == ["granian"]
    else:
        assert "server" not in r.headers


def assert_problem(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["request_id"] == r.headers["x-request-id"]


def json_route(c: httpx.Client, server: str) -> None:
    r = c.post("/tell-joke", json={})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert_secured(server, r)


def framework_errors(c: httpx.Client, server: str) -> None:
    for r, status in (
        (c.post("/tell-joke", json={"name": 5}), 422),
        (c.get("/no-such-route"), 404),
        (c.get("/tell-joke"), 405),
    ):
        assert_problem(r, status)
        assert_secured(server, r)


def declared_body_over_the_limit(c: httpx.Client, server: str) -> None:
    body = b'{"name": "' + b"x" * LIMIT + b'"}'
    r = c.post("/tell-joke", content=body, headers={"content-type": "application/json"})
    assert r.request.headers["content-length"] == str(len(body))
    assert_problem(r, 413)
    assert_secured(server, r)


def chunked_body_over_the_limit(c: httpx.Client, server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(5):
            yield b"x" * 1024
        yield b'"}'

    r = c.post("/tell-joke", content=chunks(), headers={"content-type": "application/json"})
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_problem(r, 413)
    assert_secured(server, r)


def event_stream(c: httpx.Client, server: str) -> None:
    with c.stream("POST", "/tell-joke/stream", json={}) as r:
        body = r.read()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in r.headers
    assert body.startswith(b"data: ")
    assert_secured(server, r, cache="no-cache")


def cors_preflights(c: httpx.Client, server: str) -> None:
    ask = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    ok = c.options("/tell-joke", headers={"origin": ORIGIN, **ask})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert_secured(server, ok)
    denied = c.options("/tell-joke", headers={"origin": "https://evil.example", **ask})
    assert_problem(denied, 403)
    assert "access-control-allow-origin" not in denied.headers
    assert_secured(server, denied)


def client_request_id(c: httpx.Client, server: str) -> None:
    r = c.post("/tell-joke", json={}, headers={"x-request-id": "client-id.1"})
    assert r.headers.get_list("x-request-id") == ["client-id.1"]


CHECKS = (
    json_route,
    framework_errors,
    declared_body_over_the_limit,
    chunked_body_over_the_limit,
    event_stream,
    cors_preflights,
    client_request_id,
)


def test_every_kind_of_response_carries_the_security_headers_and_a_request_id(
    stack: tuple[str, str], tmp_path: Path
) -> None:
    """One test per stack, so xdist never starts the same combination on two workers;
    every check runs and all failures are reported together."""
    env = {"MAX_BODY_SIZE": str(LIMIT), "CORS_ALLOWED_ORIGINS": ORIGIN}
    failures: list[str] = []
    with (
        run_server(tmp_path, args=stack_args(stack), env=env) as srv,
        srv.client() as c,
    ):
        for check in CHECKS:
            try:
                check(c, stack[1])
            except AssertionError as exc:
                failures.append(f"{check.__name__}: {exc!r}")
    assert not failures, "\n".join(failures)
