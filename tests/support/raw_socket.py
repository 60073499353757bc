# SPDX-License-Identifier: Apache-2.0
"""One raw HTTP/1.1 exchange over a socket, for tests that talk to a server below any
client library (heads a client would refuse to send, 100 Continue)."""

from __future__ import annotations

import socket


def exchange(port: int, request: bytes, *, then: bytes = b"") -> bytes:
    """Send ``request``; with ``then``, read what arrives first (a 100 Continue, or the
    answer) and send ``then``. Everything the server sends until it closes, bounded."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        got = b""
        if then:
            got = conn.recv(65536)
            conn.sendall(then)
        for _ in range(1000):  # the server closes after answering (connection: close)
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
        return got
