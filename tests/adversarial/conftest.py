# SPDX-License-Identifier: Apache-2.0
"""The adversarial corpus's harness: real servers, raw sockets.

``serve(server, framework="fastapi", **env)`` starts ``python -m endpoints_hello`` on a
free loopback port with the given environment, or returns the one already running with
exactly that configuration: servers are shared by every test of a session (per xdist
worker) and at most ``_POOL_SIZE`` of them live at once, the least recently used
stopped first. Tests must therefore leave a server as they found it (close their
sockets; no test-specific state).

``raw_request(port, data, timeout)`` writes bytes as they are — no client library that
would fix up a malformed request — and reads every response until the server closes the
connection, the timeout passes, or the responses read are complete and nothing more
arrives for ``linger`` seconds. A response from the app always carries ``X-Request-ID``
(the app's outermost layer adds it), one from the server's own parser never does:
``RawResponse.reached_app`` tells which side answered.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess, run_server

SERVERS = ("uvicorn", "granian", "hypercorn")

# The server-level corpus runs against this configuration. Short deadlines, so the
# slow-client cases take seconds; KEEP_ALIVE_TIMEOUT above HEADER_READ_TIMEOUT shows that
# the head deadline does not shorten keep-alive, and REQUEST_TIMEOUT well above
# BODY_READ_TIMEOUT tells a slow body's 408 from the request's 504. Head limits below
# their defaults, so the settings are shown to reach each server (8192 is granian's floor).
HARDENED_ENV = {
    "HEADER_READ_TIMEOUT": "2",
    "KEEP_ALIVE_TIMEOUT": "4",
    "BODY_READ_TIMEOUT": "2",
    "REQUEST_TIMEOUT": "8",
    "MAX_HEADER_BYTES": "8192",
    "MAX_HEADER_COUNT": "50",
}

_POOL_SIZE = 6  # the three servers in two configurations
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n")

Serve = Callable[..., ServerProcess]


# --- servers ---------------------------------------------------------------------------


class _Pool:
    """Running servers by configuration, least recently used first."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.live: OrderedDict[tuple[object, ...], tuple[contextlib.ExitStack, ServerProcess]] = (
            OrderedDict()
        )

    def get(self, server: str, framework: str = "fastapi", **env: str) -> ServerProcess:
        key = (server, framework, tuple(sorted(env.items())))
        if key in self.live:
            stack, proc = self.live[key]
            if proc.proc.poll() is None:
                self.live.move_to_end(key)
                return proc
            del self.live[key]  # it died: the test that needs it gets a fresh one
            stack.close()
        while len(self.live) >= _POOL_SIZE:
            _, (stack, _) = self.live.popitem(last=False)
            stack.close()
        stack = contextlib.ExitStack()
        tmp: Path = self.tmp_path_factory.mktemp(f"{server}-{framework}")
        args = ["--server", server, "--framework", framework, "--no-grpc"]
        proc = stack.enter_context(run_server(tmp, args=args, env=env))
        self.live[key] = (stack, proc)
        return proc

    def close(self) -> None:
        while self.live:
            _, (stack, _) = self.live.popitem()
            stack.close()


@pytest.fixture(scope="session")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """``serve(server, framework="fastapi", **env) -> ServerProcess`` (started once, shared)."""
    pool = _Pool(tmp_path_factory)
    try:
        yield pool.get
    finally:
        pool.close()


@pytest.fixture(params=SERVERS)
def server_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def hardened(serve: Serve, server_name: str) -> ServerProcess:
    """The FastAPI app on ``server_name`` with ``HARDENED_ENV``."""
    return serve(server_name, **HARDENED_ENV)


# --- raw HTTP/1.1 ----------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return values[0] if values else None


@dataclass
class RawResponse:
    """What came back on one connection, in order."""

    responses: list[Response] = field(default_factory=list)
    raw: bytes = b""
    closed: bool = False  # the server closed (FIN or RST) before the timeout
    reset: bool = False  # ... with RST (unread request bytes, or an abort)
    elapsed: float = 0.0  # until the close, the timeout, or the end of lingering

    @property
    def status(self) -> int | None:
        """The first final (non-1xx) response's status; None when none came."""
        return next((r.status for r in self.responses if r.status >= 200), None)

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses if r.status >= 200]

    @property
    def reached_app(self) -> bool:
        return any(r.header("x-request-id") is not None for r in self.responses)

    def header(self, name: str) -> str | None:
        final = [r for r in self.responses if r.status >= 200]
        return final[0].header(name) if final else None


def raw_request(
    port: int, data: bytes, timeout: float = 5.0, *, linger: float = 0.3
) -> RawResponse:
    """Send ``data`` on a new connection and collect the responses (see module docstring)."""
    out = RawResponse()
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # A writer thread: a server that answers 431 and closes while a large request is
        # still being written must not leave us blocked in sendall, unable to read it.
        writer = threading.Thread(target=_send_quietly, args=(sock, data), daemon=True)
        writer.start()
        _read(sock, out, start + timeout, linger)
        out.elapsed = time.monotonic() - start
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    writer.join(timeout=5)
    return out


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


def _read(sock: socket.socket, out: RawResponse, deadline: float, linger: float) -> None:
    complete_at: float | None = None
    while True:
        now = time.monotonic()
        until = deadline if complete_at is None else min(deadline, complete_at + linger)
        if now >= until:
            return
        ready, _, _ = select.select([sock], [], [], until - now)
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            out.closed = out.reset = True
            return
        if not chunk:
            out.closed = True
            _parse(out, eof=True)
            return
        out.raw += chunk
        complete_at = time.monotonic() if _parse(out, eof=False) else None


def _parse(out: RawResponse, *, eof: bool) -> bool:
    """Parse ``out.raw`` into ``out.responses``; True when it ends at a response boundary."""
    out.responses.clear()
    buf = out.raw
    while buf:
        match = _STATUS_LINE.match(buf)
        end = buf.find(b"\r\n\r\n")
        if match is None or end < 0:
            return False
        headers = []
        for line in buf[match.end() : end].split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))
        status = int(match.group(1))
        rest = buf[end + 4 :]
        length = next((v for k, v in headers if k == "content-length"), None)
        chunked = any(k == "transfer-encoding" and "chunked" in v for k, v in headers)
        if status < 200 or status in (204, 304):
            body, buf = b"", rest
        elif length is not None:
            if len(rest) < int(length):
                return False
            body, buf = rest[: int(length)], rest[int(length) :]
        elif chunked:
            parsed = _dechunk(rest)
            if parsed is None:
                return False
            body, buf = parsed
        else:  # delimited by the close
            if not eof:
                return False
            body, buf = rest, b""
        out.responses.append(Response(status, headers, body))
    return True


def _dechunk(data: bytes) -> tuple[bytes, bytes] | None:
    body = b""
    while True:
        line_end = data.find(b"\r\n")
        if line_end < 0:
            return None
        size = int(data[:line_end].split(b";")[0], 16)
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", line_end)
            if trailer_end < 0:
                return None
            return body, data[trailer_end + 4 :]
        chunk_end = line_end + 2 + size
        if len(data) < chunk_end + 2:
            return None
        body += data[line_end + 2 : chunk_end]
        data = data[chunk_end + 2 :]


# --- cases: bytes in, the expected outcome per server ----------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the final status; None: closed without an answer
    app: bool = False  # the app answered (X-Request-ID): the server's parser let it through
    closed: bool = True  # the server closed the connection


def refused(status: int) -> Outcome:
    """The server's own parser answered ``status`` and closed; the app never ran."""
    return Outcome(status)


# The app answered 200 and the connection stays open for the next request.
SERVED = Outcome(200, app=True, closed=False)


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: Outcome
    per_server: dict[str, Outcome] = field(default_factory=dict)  # where a server differs
    timeout: float = 5.0

    def outcome(self, server: str) -> Outcome:
        return self.per_server.get(server, self.expect)


def case_params(cases: list[Case], xfail: dict[tuple[str, str], str] | None = None) -> list[Any]:
    """``(case, server_name)`` parameters for every case on every server.

    ``xfail`` maps (case name, server) to the reason of a known defect; strict, so the
    marker has to go once it is fixed.
    """
    xfail = xfail or {}
    params = []
    for case in cases:
        for server in SERVERS:
            reason = xfail.get((case.name, server))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(case, server, marks=marks, id=f"{case.name}-{server}"))
    return params


def check_case(server: ServerProcess, server_name: str, case: Case) -> RawResponse:
    """Send the case, compare with its outcome on this server, check the server still serves."""
    expect = case.outcome(server_name)
    got = raw_request(server.port, case.data, timeout=case.timeout)
    assert (got.status, got.reached_app, got.closed) == (
        expect.status,
        expect.app,
        expect.closed,
    ), got.raw[:400]
    # Never a second response: nothing hidden in a body was served as a request.
    assert len(got.statuses) <= 1, got.raw[:400]
    assert_still_serves(server)
    return got


# --- common assertions -----------------------------------------------------------------

# "close": the server ends the connection after answering, so nothing waits for ``linger``.
HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"


def assert_still_serves(server: ServerProcess) -> None:
    """After an attack, a plain request on a new connection is served normally."""
    got = raw_request(server.port, HEALTH)
    assert got.status == 200, (got.raw[:300], server.log_text()[-2000:])
