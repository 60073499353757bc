# SPDX-License-Identifier: Apache-2.0
"""The Host header allowlist, and malformed Host headers refused."""

from __future__ import annotations

import json

import pytest

from genkit_endpoints.http.middleware.request_id import RequestIdMiddleware
from genkit_endpoints.http.middleware.trusted_host import TrustedHostMiddleware
from tests.unit.asgi._support import json_app
from tests.unit.asgi_helpers import call, http_scope


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
