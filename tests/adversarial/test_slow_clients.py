"""Slow clients are cut off (issue 4 item 6): slowloris heads, silent connections, slow bodies.

Deadlines come from ``HARDENED_ENV``: HEADER_READ_TIMEOUT=2, KEEP_ALIVE_TIMEOUT=4,
REQUEST_TIMEOUT=3. Timing bounds are generous (2 cores, servers shared with other tests):
a deadline is asserted to fire no earlier than itself minus a little, and no later than
itself plus ``SLACK``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time

from tests.adversarial.conftest import HARDENED_ENV, assert_still_serves
from tests.support.server import ServerProcess

HEADER_READ_TIMEOUT = float(HARDENED_ENV["HEADER_READ_TIMEOUT"])
KEEP_ALIVE_TIMEOUT = float(HARDENED_ENV["KEEP_ALIVE_TIMEOUT"])
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


def test_a_slowly_trickled_body_gets_504_at_the_request_timeout_and_the_connection_closes(
    hardened: ServerProcess, server_name: str
) -> None:
    """The app reads the body inside the request timeout; afterwards the server stops waiting.

    The client announces 100 bytes and sends one every half second, for longer than the
    request timeout and every connection deadline together.
    """
    head = (
        b"POST /tell-joke HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", hardened.port), timeout=10) as sock:
        sock.sendall(head + b'{"name": "')
        start = time.monotonic()
        got = b""
        closed_at = None
        answered_at = None
        while time.monotonic() - start < REQUEST_TIMEOUT + KEEP_ALIVE_TIMEOUT + 2 * SLACK:
            with contextlib.suppress(OSError):
                sock.send(b"a")
            ready, _, _ = select.select([sock], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed_at = time.monotonic() - start
                break
            got += chunk
            if answered_at is None and b"\r\n\r\n" in got:
                answered_at = time.monotonic() - start
    assert got.startswith(b"HTTP/1.1 504 "), got[:300]
    assert answered_at is not None
    assert REQUEST_TIMEOUT - 0.5 <= answered_at <= REQUEST_TIMEOUT + SLACK, answered_at
    # After its answer the server does not wait for the rest of the body: hypercorn and
    # granian close at once, uvicorn drains it for at most HEADER_READ_TIMEOUT.
    assert closed_at is not None, got[-300:]
    assert closed_at - answered_at <= HEADER_READ_TIMEOUT + SLACK, (answered_at, closed_at)
    assert_still_serves(hardened)


# --- helpers --------------------------------------------------------------------------


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
