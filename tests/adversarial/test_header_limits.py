# SPDX-License-Identifier: Apache-2.0
"""Request-head limits and Host rules on every server.

The servers run with MAX_HEADER_BYTES=8192 and MAX_HEADER_COUNT=50 (``HARDENED_ENV``),
so these cases also show that the settings reach each server. A head over a limit is
answered 431 by the server's own parser and the connection is closed: it is never
buffered without bound and never reaches the app.
"""

from __future__ import annotations

import pytest

from tests.adversarial.conftest import (
    HARDENED_ENV,
    Case,
    Outcome,
    Serve,
    assert_still_serves,
    case_params,
    check_case,
    raw_request,
    refused,
)
from tests.support.server import ServerProcess

MAX_HEADER_BYTES = int(HARDENED_ENV["MAX_HEADER_BYTES"])
MAX_HEADER_COUNT = int(HARDENED_ENV["MAX_HEADER_COUNT"])
GET = b"GET /health HTTP/1.1\r\nHost: test\r\n"
HEALTHY = Outcome(200, app=True, closed=False)


def headers(count: int) -> bytes:
    """``count`` header fields in all, Host included."""
    return GET + b"".join(b"X-%d: 1\r\n" % i for i in range(count - 1)) + b"\r\n"


def big_header(size: int) -> bytes:
    return GET + b"X-Big: " + b"a" * size + b"\r\n\r\n"


CASES = [
    Case("header_under_the_byte_limit", big_header(MAX_HEADER_BYTES - 1024), HEALTHY),
    # Sent in one write: h11's own limit would let a complete head of any size through.
    Case("header_over_the_byte_limit", big_header(MAX_HEADER_BYTES + 1024), refused(431)),
    Case(
        "request_target_over_the_byte_limit",
        b"GET /" + b"a" * (MAX_HEADER_BYTES + 1024) + b" HTTP/1.1\r\nHost: test\r\n\r\n",
        refused(431),
    ),
    Case("fields_at_the_count_limit", headers(MAX_HEADER_COUNT), HEALTHY),
    Case(
        "fields_over_the_count_limit",
        headers(MAX_HEADER_COUNT + 1),
        refused(431),
        # granian cannot be configured: hyper's count limit is a fixed 100.
        {"granian": HEALTHY},
    ),
    Case("fields_over_hypers_fixed_limit_of_100", headers(101), refused(431)),
    # --- Host (RFC 9112 section 3.2) --------------------------------------------------
    Case(
        "missing_host",
        b"GET /health HTTP/1.1\r\n\r\n",
        refused(400),
        # hyper does not require Host; the app's trusted-host check decides (any host
        # when TRUSTED_HOSTS is empty, as here).
        {"granian": HEALTHY},
    ),
    Case(
        "two_hosts",
        b"GET /health HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        refused(400),
        # hyper passes both on; the app's trusted-host check refuses more than one.
        {"granian": Outcome(400, app=True, closed=False)},
    ),
    Case("empty_host", b"GET /health HTTP/1.1\r\nHost:\r\n\r\n", HEALTHY),
    Case("http_1_0_without_host", b"GET /health HTTP/1.0\r\n\r\n", Outcome(200, app=True)),
]


@pytest.mark.parametrize(("case", "server_name"), case_params(CASES))
def test_head_case_has_its_outcome(serve: Serve, case: Case, server_name: str) -> None:
    check_case(serve(server_name, **HARDENED_ENV), server_name, case)


# A head far over the limit: the server answers 431 and closes while the client is still
# writing, so the kernel may reset the connection and drop the 431 before it is read.
# Either way nothing reaches the app, and the server is unharmed.
BOMBS = {
    "one_header_of_1_mib": big_header(1 << 20),
    "request_target_of_1_mib": b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: t\r\n\r\n",
    "ten_thousand_headers": headers(10_000),
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_header_bomb_is_refused_with_431_and_never_reaches_the_app(
    hardened: ServerProcess, bomb: str
) -> None:
    got = raw_request(hardened.port, BOMBS[bomb], timeout=10)
    assert got.closed, got.raw[:300]
    assert not got.reached_app, got.raw[:300]
    assert got.statuses in ([431], []), got.raw[:300]
    assert_still_serves(hardened)
