# SPDX-License-Identifier: Apache-2.0
"""Parity over servers: uvicorn, granian and hypercorn as real processes.

Each server runs the default FastAPI app from ``python -m endpoints_hello --server NAME``.
Draining on a signal is part of the contract every stack keeps (``test_shutdown``); two
workers serving, counting into one ``/metrics`` and draining together are checked beside
gRPC, whose port the workers share (``test_metrics_workers``).

Which worker owns a connection is read from ``/proc`` (the socket's inode among the
worker's file descriptors), so no production code has to reveal process ids.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from genkit_endpoints.serving.runners import ServerExtraMissing, require_server
from tests.e2e.test_routes import OFFLINE_DEFAULTS, UNARY, assert_valid
from tests.e2e.test_sse import frames
from tests.support.server import ServerProcess, run_server

SERVERS = ["uvicorn", "granian", "hypercorn"]
# granian 2.8 always sends "server: granian" (or the app's own value): there is no
# option to drop it (emmett-framework/granian#594), so granian is held to that.
SERVER_HEADER = {"uvicorn": None, "granian": "granian", "hypercorn": None}
# Story chunks every 60 ms: slow enough to see buffering, fast enough for unary routes.
LIVE_ENV = {"KEEP_ALIVE_TIMEOUT": "1", "OFFLINE_CHUNK_DELAY": "60"}


def args(server: str, *more: str) -> list[str]:
    return ["--server", server, "--no-grpc", *more]


@pytest.fixture(scope="module", params=SERVERS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServerProcess]]:
    name: str = request.param
    tmp = tmp_path_factory.mktemp(name)
    with run_server(tmp, args=args(name), env=LIVE_ENV) as server:
        yield name, server


def test_every_route_answers_and_no_response_names_the_server(
    live: tuple[str, ServerProcess],
) -> None:
    name, server = live
    calls: list[tuple[str, str, object, int]] = [
        *(("POST", path, {}, 200) for path in OFFLINE_DEFAULTS),
        ("POST", "/tell-joke/stream", {}, 200),
        ("POST", "/tell-story/stream", {}, 200),
        ("POST", "/flows/tell_joke", {"data": {"name": "Tom"}}, 200),
        ("GET", "/health", None, 200),
        ("GET", "/ready", None, 200),
        ("GET", "/missing", None, 404),
        ("POST", "/tell-joke", {"name": "x" * 201}, 422),
    ]
    with server.client() as c, ThreadPoolExecutor(len(calls)) as pool:
        responses = list(pool.map(lambda call: c.request(call[0], call[1], json=call[2]), calls))
    for (_, path, _, status), r in zip(calls, responses, strict=True):
        assert r.status_code == status, (path, r.text)
        assert r.headers.get("server") == SERVER_HEADER[name], (path, r.headers)
        if status == 200 and path in UNARY:
            assert_valid(path, r.json())
        if status >= 400:
            assert r.headers["content-type"] == "application/problem+json"
        if path.endswith("/stream"):
            assert frames(r.content)[-1]["done"] is True


def test_sse_frames_arrive_unbuffered_as_an_event_stream(live: tuple[str, ServerProcess]) -> None:
    _, server = live
    arrivals: list[float] = []
    raw = b""
    start = time.monotonic()
    with (
        server.client() as c,
        c.stream("POST", "/tell-story/stream", json={}, headers={"accept-encoding": "gzip"}) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in r.headers
        for chunk in r.iter_raw():
            raw += chunk
            arrivals.extend(time.monotonic() - start for _ in range(chunk.count(b"\n\n")))
    *chunks, done = frames(raw)
    assert done == {"done": True, "story": "".join(str(f["chunk"]) for f in chunks)}
    assert len(arrivals) >= 4
    # Not buffered: the first frame arrives long before the last one.
    assert arrivals[-1] - arrivals[0] >= 0.15, arrivals


def test_idle_connection_is_kept_for_the_keep_alive_timeout_then_closed(
    live: tuple[str, ServerProcess],
) -> None:
    _, server = live
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        assert get_health(s).startswith(b"HTTP/1.1 200")
        time.sleep(0.25)  # idle, but within KEEP_ALIVE_TIMEOUT=1: still served
        assert get_health(s).startswith(b"HTTP/1.1 200")
        idle_from = time.monotonic()
        assert s.recv(1) == b""  # the server closes the idle connection
        idle = time.monotonic() - idle_from
    assert 0.5 < idle < 4, idle


def test_a_missing_server_extra_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main`` prints this message as its one-line CLI error."""
    monkeypatch.setitem(sys.modules, "granian", None)  # how Python marks "not importable"
    with pytest.raises(ServerExtraMissing) as err:
        require_server("granian")
    assert str(err.value) == (
        "--server granian needs the 'granian' extra: pip install 'genkit-endpoints[granian]'"
    )
    assert isinstance(err.value, RuntimeError)


# --- helpers ------------------------------------------------------------------------


def get_health(s: socket.socket) -> bytes:
    s.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got or not got.endswith(b'{"status":"ok"}'):
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in proc_state(pid)


def proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            out += [kid, *descendants(kid)]
    return out


def server_side_inode(port: int, client_port: int) -> int | None:
    """The inode of the server's end of a loopback connection, from /proc/net/tcp."""
    local, remote = f"0100007F:{port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[9])
    return None


def owner(server: ServerProcess, s: socket.socket) -> int | None:
    inode = server_side_inode(server.port, s.getsockname()[1])
    if inode is None:
        return None
    needle = f"socket:[{inode}]"
    for pid in [server.proc.pid, *descendants(server.proc.pid)]:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                if os.readlink(fd) == needle:
                    return pid
            except OSError:
                continue
    return None
