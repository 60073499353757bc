# SPDX-License-Identifier: Apache-2.0
"""Client identity and scheme behind trusted proxies."""

from __future__ import annotations

from typing import Any

import pytest

from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.proxy import (
    ProxyHeadersMiddleware,
    TrustedProxies,
    parse_networks,
)
from genkit_endpoints.http.middleware.stack import build_stack
from tests.unit.asgi._support import client_echo_app, json_app
from tests.unit.asgi_helpers import call, http_scope


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
