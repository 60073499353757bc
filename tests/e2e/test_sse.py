# SPDX-License-Identifier: Apache-2.0
"""SSE routes and the callable protocol's stream mode, byte level."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import stack_args
from tests.support.server import ServerProcess, run_server

FRAME = re.compile(rb"data: (\{.*?\})\n\n", re.S)


def frames(raw: bytes) -> list[dict[str, object]]:
    """Split a complete SSE body into JSON frames, asserting nothing else is in it."""
    out = []
    pos = 0
    for m in FRAME.finditer(raw):
        assert m.start() == pos, f"unexpected bytes before frame: {raw[pos : m.start()]!r}"
        out.append(json.loads(m.group(1)))
        pos = m.end()
    assert pos == len(raw), f"trailing bytes: {raw[pos:]!r}"
    return out


@pytest.mark.parametrize(
    ("path", "key"), [("/tell-joke/stream", "joke"), ("/tell-story/stream", "story")]
)
def test_stream_frames_are_exact_and_end_with_done(
    offline_server: ServerProcess, path: str, key: str
) -> None:
    with offline_server.client() as c:
        r = c.post(path, json={}, headers={"accept-encoding": "gzip, br"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in r.headers
    got = frames(r.content)
    assert len(got) >= 3
    *chunks, done = got
    assert all(set(f) == {"chunk"} for f in chunks)
    assert done == {"done": True, key: "".join(str(f["chunk"]) for f in chunks)}


def test_stream_input_is_validated_before_the_stream_starts(offline_server: ServerProcess) -> None:
    with offline_server.client() as c:
        r = c.post("/tell-story/stream", json={"topic": ""})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "topic"


def test_callable_stream_mode_uses_message_and_result_frames(offline_server: ServerProcess) -> None:
    with offline_server.client() as c:
        by_accept = c.post(
            "/flows/tell_joke_stream",
            json={"data": {"name": "Tom"}},
            headers={"accept": "text/event-stream"},
        )
        by_query = c.post("/flows/tell_story?stream=true", json={"data": {}})
    for r in (by_accept, by_query):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert b"event:" not in r.content
        assert b"\n:" not in r.content
        assert not r.content.startswith(b":")
        *messages, result = frames(r.content)
        assert messages
        assert all(set(m) == {"message"} for m in messages)
        assert result == {"result": "".join(str(m["message"]) for m in messages)}


def test_callable_stream_of_a_unary_flow_sends_only_the_result(
    offline_server: ServerProcess,
) -> None:
    with offline_server.client() as c:
        r = c.post("/flows/tell_joke?stream=true", json={"data": {}})
    (result,) = frames(r.content)
    assert set(result["result"]) == {"joke", "username"}  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def slow_server(
    stack: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Offline model with latency: 100 ms to the first chunk, 150 ms between chunks."""
    env = {"OFFLINE_FIRST_CHUNK_DELAY": "100", "OFFLINE_CHUNK_DELAY": "150"}
    with run_server(tmp_path_factory.mktemp("slow"), args=stack_args(stack), env=env) as server:
        yield server


def test_chunks_arrive_as_they_are_generated(slow_server: ServerProcess) -> None:
    arrivals: list[float] = []
    start = time.monotonic()
    with (
        slow_server.client() as c,
        c.stream("POST", "/tell-story/stream", json={}) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) >= 4
    # Not buffered: the first frame arrives long before the last one.
    assert arrivals[-1] - arrivals[0] >= 0.3


def test_client_disconnect_cancels_the_model_call(slow_server: ServerProcess) -> None:
    before = sum(e.get("event") == "offline_model_cancelled" for e in slow_server.log_events())
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=5) as s:
        body = b"{}"
        s.sendall(
            b"POST /tell-story/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        got = b""
        while b"data:" not in got:
            got += s.recv(4096)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = slow_server.log_events()
        cancelled = sum(e.get("event") == "offline_model_cancelled" for e in events)
        if cancelled > before:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("model call was not cancelled:\n" + slow_server.log_text()[-3000:])
    # The server is still healthy afterwards.
    assert httpx.get(slow_server.base_url + "/health").status_code == 200


def test_callable_stream_disconnect_cancels_the_model_call(
    slow_server: ServerProcess, tmp_path: Path
) -> None:
    before = sum(e.get("event") == "offline_model_cancelled" for e in slow_server.log_events())
    with (
        httpx.Client(base_url=slow_server.base_url, timeout=10) as c,
        c.stream("POST", "/flows/tell_story?stream=true", json={"data": {}}) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data:"):
                break
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        cancelled = sum(
            e.get("event") == "offline_model_cancelled" for e in slow_server.log_events()
        )
        if cancelled > before:
            return
        time.sleep(0.05)
    raise AssertionError("model call was not cancelled")
