# SPDX-License-Identifier: Apache-2.0
"""Slow clients are cut off: slowloris heads, silent connections, slow or stalled bodies.

Deadlines come from ``HARDENED_ENV``: HEADER_READ_TIMEOUT=2, KEEP_ALIVE_TIMEOUT=4,
BODY_READ_TIMEOUT=2 (with the default BODY_MIN_RATE), REQUEST_TIMEOUT=8. Timing bounds
are generous (2 cores, servers shared with other tests): a deadline is asserted to fire
no earlier than itself minus a little, and no later than itself plus ``SLACK``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from dataclasses import dataclass

from tests.adversarial._app_support import parse_head
from tests.adversarial.conftest import HARDENED_ENV, assert_still_serves
from tests.support.server import ServerProcess

HEADER_READ_TIMEOUT = float(HARDENED_ENV["HEADER_READ_TIMEOUT"])
KEEP_ALIVE_TIMEOUT = float(HARDENED_ENV["KEEP_ALIVE_TIMEOUT"])
BODY_READ_TIMEOUT = float(HARDENED_ENV["BODY_READ_TIMEOUT"])
REQUEST_TIMEOUT = float(HARDENED_ENV["REQUEST_TIMEOUT"])
SLACK = 3.0

# Seconds a client has to deliver a request head. granian has one timer for an idle
# kept-alive connection and for a head in progress, set to KEEP_ALIVE_TIMEOUT so a load
# balancer never reuses a connection we closed: a slow head is cut after that instead.
HEAD_DEADLINE = {
    "uvicorn": HEADER_READ_TIMEOUT,
    "hypercorn": HEADER_READ_TIMEOUT,
    "granian": KEEP_ALIVE_TIMEOUT,
}

SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 60 + b"\r\n\r\n"


def test_slowloris_and_silent_connections_are_closed_at_the_head_deadline(
    hardened: ServerProcess, server_name: str
) -> None:
    deadline = HEAD_DEADLINE[server_name]
    # Two clients send one byte of a head every second, one sends nothing at all.
    closed_after = trickle(
        hardened.port, [SLOW_HEAD, SLOW_HEAD, b""], interval=1.0, limit=deadline + SLACK
    )
    for seconds in closed_after:
        assert seconds is not None, closed_after  # still open: never cut
        assert deadline - 0.5 <= seconds <= deadline + SLACK, closed_after
    assert_still_serves(hardened)


def test_an_idle_kept_alive_connection_outlives_the_head_deadline_but_a_slow_head_does_not(
    hardened: ServerProcess, server_name: str
) -> None:
    with socket.create_connection(("127.0.0.1", hardened.port), timeout=10) as sock:
        assert get_health(sock) == 200
        # Idle longer than HEADER_READ_TIMEOUT, shorter than KEEP_ALIVE_TIMEOUT: kept.
        time.sleep(HEADER_READ_TIMEOUT + 0.6)
        assert get_health(sock) == 200
        # On uvicorn and hypercorn the head's clock starts at its first byte; on granian
        # at the end of the last response (one timer for idle and head).
        (seconds,) = trickle_on([sock], [SLOW_HEAD], interval=0.5, limit=KEEP_ALIVE_TIMEOUT + SLACK)
    expected = HEAD_DEADLINE[server_name]
    assert seconds is not None
    assert expected - 0.5 <= seconds <= expected + SLACK, seconds


POST_HEAD = (
    b"POST /tell-joke HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n"
)


def test_a_trickled_body_gets_408_at_the_body_deadline_and_the_connection_closes(
    hardened: ServerProcess, server_name: str
) -> None:
    """The client announces 100 bytes and sends one every half second: never a pause as
    long as BODY_READ_TIMEOUT, but far below the minimum rate (BODY_MIN_RATE, 500 bytes a
    second by default), so it is cut at the body deadline, long before the request
    timeout; the server then closes the connection without waiting for the rest."""
    got = slow_body(hardened.port, POST_HEAD % 100 + b'{"name": "', trickle=b"a", interval=0.5)
    got.assert_cut_at(BODY_READ_TIMEOUT)
    assert_still_serves(hardened)


def test_a_body_that_never_starts_gets_408(hardened: ServerProcess, server_name: str) -> None:
    got = slow_body(hardened.port, POST_HEAD % 100, trickle=b"", interval=0.5)
    got.assert_cut_at(BODY_READ_TIMEOUT)
    assert_still_serves(hardened)


def test_a_steady_body_slower_than_one_read_is_not_cut(
    hardened: ServerProcess, server_name: str
) -> None:
    """100 KiB in ten parts over 1.5 s: well above the minimum rate, every pause well
    inside the body deadline. It is served, and the connection stays open."""
    body = b'{"name": "Rex", "padding": "' + b"p" * (100 * 1024 - 30) + b'"}'
    size = len(body) // 10 + 1
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    assert len(parts) == 10
    with socket.create_connection(("127.0.0.1", hardened.port), timeout=10) as sock:
        sock.sendall(POST_HEAD % len(body))
        for part in parts:
            time.sleep(0.15)
            sock.sendall(part)
        assert read_response(sock) == 200
        assert get_health(sock) == 200  # the same connection serves the next request


# --- helpers --------------------------------------------------------------------------


@dataclass
class SlowBody:
    """What a slow body's connection saw: the response and when it came, when it closed."""

    raw: bytes
    answered_at: float | None
    closed_at: float | None

    def assert_cut_at(self, deadline: float) -> None:
        """A 408 problem from the app at ``deadline``, then the connection closed at once."""
        status, headers = parse_head(self.raw)
        assert status == 408, self.raw[:300]
        assert headers["content-type"] == "application/problem+json"
        assert headers["connection"] == "close"
        assert "x-request-id" in headers  # the app answered, not the server
        assert self.answered_at is not None
        assert deadline - 0.5 <= self.answered_at <= deadline + SLACK, self.answered_at
        assert self.answered_at < REQUEST_TIMEOUT  # the body deadline, not the request's
        assert self.closed_at is not None, self.raw[-300:]
        assert self.closed_at - self.answered_at <= SLACK, (self.answered_at, self.closed_at)


def slow_body(port: int, start: bytes, *, trickle: bytes, interval: float) -> SlowBody:
    """Send ``start`` (a request head, maybe a body's first bytes), then ``trickle`` every
    ``interval`` seconds until the server closes the connection, for at most the
    request timeout plus ``SLACK``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(start)
        began = time.monotonic()
        got = b""
        answered_at = closed_at = None
        while time.monotonic() - began < REQUEST_TIMEOUT + SLACK:
            if trickle and answered_at is None:
                with contextlib.suppress(OSError):
                    sock.send(trickle)
            if not select.select([sock], [], [], interval)[0]:
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed_at = time.monotonic() - began
                break
            got += chunk
            if answered_at is None and b"\r\n\r\n" in got:
                answered_at = time.monotonic() - began
    return SlowBody(got, answered_at, closed_at)


def read_response(sock: socket.socket, timeout: float = 10) -> int:
    """Read one response with a ``Content-Length`` from ``sock``; its status (0: none)."""
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, sep, body = got.partition(b"\r\n\r\n")
        if sep and len(body) >= int(parse_head(got)[1].get("content-length", "0")):
            return parse_head(got)[0]
        if not select.select([sock], [], [], 1.0)[0]:
            continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return 0


def get_health(sock: socket.socket) -> int:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    got = b""
    while not got.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return int(got[9:12]) if got.startswith(b"HTTP/1.1 ") else 0


def trickle(
    port: int, payloads: list[bytes], *, interval: float, limit: float
) -> list[float | None]:
    """Open one connection per payload and trickle each (see ``trickle_on``)."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in payloads]
    try:
        return trickle_on(socks, payloads, interval=interval, limit=limit)
    finally:
        for sock in socks:
            sock.close()


def trickle_on(
    socks: list[socket.socket], payloads: list[bytes], *, interval: float, limit: float
) -> list[float | None]:
    """Send each payload one byte per ``interval`` on its socket; the seconds until the
    server closed each (None: still open after ``limit`` seconds). Nothing may be answered.
    """
    start = time.monotonic()
    closed: dict[int, float] = {}
    sent = 0
    while len(closed) < len(socks) and time.monotonic() - start < limit:
        for idx, sock in enumerate(socks):
            if idx not in closed and sent < len(payloads[idx]):
                try:
                    sock.send(payloads[idx][sent : sent + 1])
                except OSError:
                    closed[idx] = time.monotonic() - start
        sent += 1
        open_socks = [s for i, s in enumerate(socks) if i not in closed]
        ready, _, _ = select.select(open_socks, [], [], interval)
        for sock in ready:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            assert not data, data[:200]  # a partial head is never answered
            closed[socks.index(sock)] = time.monotonic() - start
    return [closed.get(idx) for idx in range(len(socks))]
