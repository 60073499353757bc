# SPDX-License-Identifier: Apache-2.0
"""Helpers for the app-level adversarial cases: unique request ids, the access log, raw
response heads, and reading a connection until the server closes it.

The servers themselves come from ``conftest.serve`` (shared, pooled); these helpers only
add what the app-level cases need on top of ``conftest.raw_request``.
"""

from __future__ import annotations

import os
import select
import socket
import time
from typing import Any

from tests.support.server import ServerProcess

REQUEST_ID_HEX = frozenset("0123456789abcdef")


def new_request_id(tag: str) -> str:
    """A valid, unique ``X-Request-ID`` to find this request's access-log line."""
    return f"adv-{tag}-{os.urandom(6).hex()}"


def is_generated_id(value: str | None) -> bool:
    """The app's own id: 32 lower-case hex digits (never anything the client sent)."""
    return value is not None and len(value) == 32 and set(value) <= REQUEST_ID_HEX


def access_events(server: ServerProcess, ids: set[str], timeout: float = 10) -> dict[str, Any]:
    """The access-log ("request") event of each request id, waiting until all are logged."""
    deadline = time.monotonic() + timeout
    found: dict[str, Any] = {}
    while True:
        for event in server.log_events():
            rid = event.get("request_id")
            if event.get("event") == "request" and rid in ids:
                found[rid] = event
        if len(found) == len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    missing = ids - set(found)
    assert not missing, f"no access log line for {sorted(missing)}:\n{server.log_text()[-3000:]}"
    return found


def parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers (lower-case names; a repeated name keeps its first value)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status_line, *lines = head.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(status_line.split(" ", 2)[1]), headers


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (FIN or RST), or ``timeout``.

    Returns (bytes, closed).
    """
    data = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not wait_readable(sock, left):
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False
