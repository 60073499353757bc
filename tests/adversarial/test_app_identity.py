# SPDX-License-Identifier: Apache-2.0
"""Client identity, Host and CORS against the real app on every server.

A client must not be able to choose its own identity (the address in the access log, the
future rate-limit key) by writing ``X-Forwarded-For``, must not get past
``TRUSTED_HOSTS`` with another ``Host``, and must not get CORS grants for an origin that
is not on the list. FastAPI is enough here: these are the kit's middleware, the same on
every framework; the server is what varies.

The guarded configuration (trusted proxy, host allowlist, CORS origin) is used by no
other module, so its cases run as one test per server: under ``--dist load`` separate
tests would start the same server on both xdist workers. Each case is a named function
and every failing case is reported, not just the first.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.adversarial._app_support import access_events, new_request_id
from tests.adversarial.conftest import HARDENED_ENV, SERVERS, RawResponse, Serve, raw_request
from tests.support.server import ServerProcess

ORIGIN = "https://app.example.com"
# 127.0.0.1 stays a trusted host: the test harness polls /health by address.
GUARDED_ENV = {
    "TRUSTED_PROXIES": "127.0.0.1/32",
    "TRUSTED_HOSTS": "api.example.com,127.0.0.1",
    "CORS_ALLOWED_ORIGINS": ORIGIN,
}
CSP = "default-src 'none'; frame-ancestors 'none'"
HOST = "api.example.com"


def get(
    server: ServerProcess, headers: dict[str, str], *, method: str = "GET", path: str = "/health"
) -> RawResponse:
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    # A complete response is all these cases look at: no need to linger for more.
    return raw_request(server.port, (head + "\r\n").encode(), linger=0.02)


# --- behind a trusted proxy, with a host allowlist and one CORS origin -----------------

# X-Forwarded-For as our proxy would pass it on -> the client the app must log.
CHAINS = [
    ("203.0.113.7", "203.0.113.7"),
    # What the client wrote sits left of what our proxy appended: ignored, however
    # it rotates.
    ("6.6.6.6, 203.0.113.7", "203.0.113.7"),
    ("1.2.3.4, 5.6.7.8, 203.0.113.7", "203.0.113.7"),
    ("127.0.0.1, 203.0.113.7", "203.0.113.7"),
    # A trusted hop on the right is skipped.
    ("203.0.113.7, 127.0.0.1", "203.0.113.7"),
    ("2001:db8::7", "2001:db8::7"),
    # Garbage where the proxy's entry should be: fall back to the peer.
    ("203.0.113.7, not-an-address", "127.0.0.1"),
]


def client_is_the_rightmost_untrusted_hop(server: ServerProcess) -> None:
    sent = {}  # request id -> chain
    for chain, _ in CHAINS:
        rid = new_request_id("proxied")
        got = get(server, {"Host": HOST, "X-Request-ID": rid, "X-Forwarded-For": chain})
        assert got.statuses == [200], got.raw[:300]
        sent[rid] = chain
    events = access_events(server, set(sent))
    logged = {chain: events[rid]["client_ip"] for rid, chain in sent.items()}
    assert logged == dict(CHAINS)


def https_from_the_trusted_proxy_turns_on_hsts(server: ServerProcess) -> None:
    plain = get(server, {"Host": HOST})
    https = get(server, {"Host": HOST, "X-Forwarded-Proto": "https"})
    assert plain.header("strict-transport-security") is None
    assert https.header("strict-transport-security") == "max-age=31536000; includeSubDomains"


def hosts_outside_trusted_hosts_are_400_problems(server: ServerProcess) -> None:
    for host in ("evil.example.com", "api.example.com.evil.example", "example.com", "localhost"):
        got = get(server, {"Host": host}, method="POST", path="/tell-joke")
        assert got.statuses == [400], (host, got.raw[:300])
        assert got.header("content-type") == "application/problem+json"
        assert got.header("content-security-policy") == CSP
        assert got.reached_app
        assert host.encode() not in got.responses[0].body  # never reflected


def an_allowlisted_host_with_a_port_is_served(server: ServerProcess) -> None:
    got = get(server, {"Host": "API.example.com:443"})
    assert got.statuses == [200], got.raw[:300]


PREFLIGHT = {
    "Host": HOST,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, x-request-id",
}


def a_preflight_from_the_allowed_origin_is_granted(server: ServerProcess) -> None:
    got = get(server, {**PREFLIGHT, "Origin": ORIGIN}, method="OPTIONS", path="/tell-joke")
    assert got.statuses == [204], got.raw[:300]
    assert got.header("access-control-allow-origin") == ORIGIN
    assert "POST" in (got.header("access-control-allow-methods") or "")
    assert got.header("access-control-allow-headers") == "content-type, x-request-id"
    assert got.header("content-security-policy") == CSP


def preflights_from_other_origins_are_refused(server: ServerProcess) -> None:
    for origin in ("https://evil.example", "https://app.example.com.evil.example", "null"):
        got = get(server, {**PREFLIGHT, "Origin": origin}, method="OPTIONS", path="/tell-joke")
        assert got.statuses == [403], (origin, got.raw[:300])
        assert got.header("content-type") == "application/problem+json"
        granted = [k for r in got.responses for k, _ in r.headers if k.startswith("access-control")]
        assert granted == [], origin


def a_request_from_another_origin_gets_no_cors_grant(server: ServerProcess) -> None:
    allowed = get(server, {"Host": HOST, "Origin": ORIGIN})
    other = get(server, {"Host": HOST, "Origin": "https://evil.example"})
    assert allowed.statuses == other.statuses == [200]
    assert allowed.header("access-control-allow-origin") == ORIGIN
    assert "x-request-id" in (allowed.header("access-control-expose-headers") or "")
    assert other.header("access-control-allow-origin") is None


GUARDED_CASES: list[Callable[[ServerProcess], None]] = [
    client_is_the_rightmost_untrusted_hop,
    https_from_the_trusted_proxy_turns_on_hsts,
    hosts_outside_trusted_hosts_are_400_problems,
    an_allowlisted_host_with_a_port_is_served,
    a_preflight_from_the_allowed_origin_is_granted,
    preflights_from_other_origins_are_refused,
    a_request_from_another_origin_gets_no_cors_grant,
]


@pytest.mark.parametrize("server_kind", SERVERS)
def test_behind_a_trusted_proxy_identity_host_and_cors_hold(serve: Serve, server_kind: str) -> None:
    server = serve(server_kind, **GUARDED_ENV)
    failures = []
    for case in GUARDED_CASES:
        try:
            case(server)
        except AssertionError as exc:
            failures.append(f"{case.__name__}: {exc}")
    assert not failures, "\n".join(failures)


# --- no trusted proxies ----------------------------------------------------------------

# Rotating spoofed chains, the way a client would try to look like many clients.
ROTATION = [
    "1.1.1.1",
    "2.2.2.2, 3.3.3.3",
    "10.0.0.1",
    "127.0.0.1",
    "::1",
    "203.0.113.7, 198.51.100.9, 192.0.2.33",
    "garbage, <script>",
    "unknown",
]


@pytest.mark.parametrize("server_kind", SERVERS)
def test_without_trusted_proxies_forwarded_for_never_changes_the_logged_client(
    serve: Serve, server_kind: str
) -> None:
    server = serve(server_kind, **HARDENED_ENV)
    ids = set()
    for i, chain in enumerate(ROTATION):
        rid = new_request_id(f"xff{i}")
        headers = {
            "Host": "test",
            "X-Request-ID": rid,
            "X-Forwarded-For": chain,
            "X-Forwarded-Proto": "https",
        }
        got = get(server, headers)
        assert got.statuses == [200]
        assert got.header("strict-transport-security") is None  # no https from strangers
        ids.add(rid)
    events = access_events(server, ids)
    assert {events[rid]["client_ip"] for rid in ids} == {"127.0.0.1"}
