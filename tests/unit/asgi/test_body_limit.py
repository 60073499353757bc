# SPDX-License-Identifier: Apache-2.0
"""The request body limits: 413 for too much, 408 for too slow, never a late 200."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from genkit_endpoints.http.middleware.body_limit import BodyLimitMiddleware
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.types import Message, Receive, Scope, Send
from tests.unit.asgi._support import assert_secured, reading_app
from tests.unit.asgi_helpers import Captured, call_chunks, http_scope, within


def post(length: int | None = None) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return http_scope("/upload", "POST", headers)


async def read_body(receive: Receive, *, pause: float = 0) -> bytes:
    """The whole request body, as an app reads it; ``pause`` seconds between reads."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body
        if pause:
            await asyncio.sleep(pause)


async def test_declared_length_over_the_limit_is_413_before_anything_is_read() -> None:
    bodies: list[bytes] = []
    sent, upload = await call_chunks(
        BodyLimitMiddleware(reading_app(bodies, []), 100), post(101), [b"x" * 101]
    )
    assert sent.status == 413
    assert upload.pulled_messages == 0
    assert bodies == []
    assert sent.headers[b"connection"] == b"close"
    assert json.loads(sent.body)["detail"] == "The request body is larger than 100 bytes."


@pytest.mark.parametrize("length", [None, 100])
async def test_a_body_exactly_at_the_limit_is_accepted(length: int | None) -> None:
    bodies: list[bytes] = []
    chunks = [b"a" * 40, b"b" * 40, b"c" * 20]
    sent, _ = await call_chunks(
        BodyLimitMiddleware(reading_app(bodies, []), 100), post(length), chunks
    )
    assert sent.status == 200
    assert bodies == [b"".join(chunks)]


async def test_chunked_body_over_the_limit_stops_reading_at_the_crossing_chunk() -> None:
    bodies: list[bytes] = []
    events: list[str] = []
    chunk = 64
    chunks = [b"x" * chunk] * 50  # 3200 bytes offered
    app = BodyLimitMiddleware(reading_app(bodies, events), 200)
    sent, upload = await call_chunks(app, post(), chunks)
    assert sent.status == 413
    assert upload.pulled_bytes <= 200 + chunk
    assert upload.pulled_messages == 4  # 256 bytes: the first chunk over the limit
    assert events[-1] == "http.disconnect"  # the app was told the client is gone
    # The app's own (late) 200 never reached the client: one response, the 413.
    assert [m["status"] for m in sent.messages if m["type"] == "http.response.start"] == [413]
    assert b"late" not in sent.body


async def test_a_lying_content_length_is_caught_while_streaming() -> None:
    sent, upload = await call_chunks(
        BodyLimitMiddleware(reading_app([], []), 100), post(10), [b"x" * 60] * 5
    )
    assert sent.status == 413
    assert upload.pulled_messages == 2


async def test_an_app_that_fails_on_the_reported_disconnect_leaves_only_the_413() -> None:
    async def strict(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] == "http.request":
            pass
        raise ConnectionError("client disconnected")  # what frameworks raise

    app = build_stack(strict, HttpPolicy(max_body_size=100))
    sent, _ = await call_chunks(app, post(), [b"x" * 80] * 3)
    assert sent.status == 413
    assert_secured(sent)
    assert [m["type"] for m in sent.messages] == ["http.response.start", "http.response.body"]


# --- time ------------------------------------------------------------------------------
# Deadlines of a fraction of a second; the assertions are about what happens, never how
# close to the deadline it happens.


def paced(app: Any, *, read_timeout: float, min_rate: int = 0, request_timeout: float = 30) -> Any:
    """``app`` in the whole stack, with the given body deadlines."""
    policy = HttpPolicy(
        request_timeout=request_timeout, body_read_timeout=read_timeout, body_min_rate=min_rate
    )
    return build_stack(app, policy)


def responses(sent: Captured) -> list[int]:
    return [m["status"] for m in sent.messages if m["type"] == "http.response.start"]


def assert_body_timeout(sent: Captured) -> None:
    assert responses(sent) == [408]  # the app's own (late) 200 never reached the client
    assert sent.headers[b"connection"] == b"close"
    assert sent.headers[b"content-type"] == b"application/problem+json"
    assert_secured(sent)
    problem = json.loads(sent.body)
    assert (problem["status"], problem["title"]) == (408, "Request Timeout")
    assert problem["detail"].startswith("The request body arrived too slowly")
    assert b"late" not in sent.body


async def test_a_body_that_never_starts_gets_408_and_the_app_sees_a_disconnect() -> None:
    bodies: list[bytes] = []
    events: list[str] = []
    app = paced(reading_app(bodies, events), read_timeout=0.1)
    async with within(3):
        sent, _ = await call_chunks(app, post(100), [], gap=0, stall=True)
    assert_body_timeout(sent)
    assert json.loads(sent.body)["detail"] == (
        "The request body arrived too slowly: each part must arrive within 0.1 seconds."
    )
    assert events == ["http.disconnect"]
    assert bodies == [b""]


async def test_a_body_that_stops_midway_gets_408() -> None:
    bodies: list[bytes] = []
    events: list[str] = []
    app = paced(reading_app(bodies, events), read_timeout=0.1)
    async with within(3):
        sent, upload = await call_chunks(app, post(), [b"a" * 10, b"b" * 10], gap=0, stall=True)
    assert_body_timeout(sent)
    assert upload.pulled_messages == 2
    assert events == ["http.request", "http.request", "http.disconnect"]


async def test_a_trickle_within_the_gap_is_cut_by_the_minimum_rate() -> None:
    """One byte every 50 ms never pauses for the 0.5 s read timeout, but 20 bytes a
    second is far below 500: it is cut long before all 40 bytes are in."""
    chunks = [b"x"] * 40
    app = paced(reading_app([], []), read_timeout=0.5, min_rate=500)
    async with within(3):
        sent, upload = await call_chunks(app, post(), chunks, gap=0.05)
    assert_body_timeout(sent)
    assert upload.pulled_messages < len(chunks)
    assert json.loads(sent.body)["detail"] == (
        "The request body arrived too slowly: each part must arrive within 0.5 seconds, "
        "at 500 bytes per second or more on average."
    )


async def test_without_a_minimum_rate_only_the_gap_counts() -> None:
    bodies: list[bytes] = []
    chunks = [b"x"] * 10
    app = paced(reading_app(bodies, []), read_timeout=0.5, min_rate=0)
    async with within(3):
        sent, _ = await call_chunks(app, post(), chunks, gap=0.05)
    assert responses(sent) == [200]
    assert bodies == [b"x" * 10]


async def test_a_steady_body_slower_than_one_part_is_not_cut() -> None:
    """2 KiB a second in ten parts: above the minimum rate, every pause well inside the gap."""
    bodies: list[bytes] = []
    chunks = [bytes([65 + i]) * 100 for i in range(10)]
    app = paced(reading_app(bodies, []), read_timeout=0.5, min_rate=500)
    async with within(3):
        sent, _ = await call_chunks(app, post(1000), chunks, gap=0.05)
    assert responses(sent) == [200]
    assert bodies == [b"".join(chunks)]


async def test_a_body_that_arrives_at_once_is_untouched_and_leaves_no_deadline_behind() -> None:
    """After the body, the app may wait for the client to leave (a stream does) for far
    longer than the body deadline: that wait is not the body's."""
    events: list[str] = []

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        events.append((await receive())["type"])  # the client leaves after 0.3 s
        await send({"type": "http.response.body", "body": b""})

    sent = Captured()
    left = asyncio.Event()
    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop(0)
        await asyncio.sleep(0.3)
        left.set()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.messages.append(message)

    async with within(3):
        await paced(streaming, read_timeout=0.05, min_rate=500)(post(4), receive, send)
    assert left.is_set()
    assert events == ["http.disconnect"]
    assert responses(sent) == [200]
    assert sent.body == b"abcd"


async def test_time_the_app_spends_elsewhere_is_not_held_against_the_client() -> None:
    """The app pauses between two reads for longer than the deadline; the client, whose
    next part comes as soon as it is asked for, is not cut."""
    bodies: list[bytes] = []

    async def thinking(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive, pause=0.3)
        bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = paced(thinking, read_timeout=0.1, min_rate=500)
    async with within(3):
        sent, _ = await call_chunks(app, post(), [b"a", b"b", b"c"], gap=0.01)
    assert responses(sent) == [200]
    assert bodies == [b"abc"]


async def test_a_body_read_in_another_task_is_cut_there() -> None:
    """Some frameworks (Quart) read the body in a task of their own: that task is
    interrupted, not the request's."""
    events: list[str] = []

    async def split(scope: Scope, receive: Receive, send: Send) -> None:
        async def reader() -> None:
            while True:
                message = await receive()
                events.append(message["type"])
                if not message.get("more_body", False):
                    return

        await asyncio.create_task(reader())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    app = paced(split, read_timeout=0.1)
    async with within(3):
        sent, _ = await call_chunks(app, post(), [b"a"], gap=0, stall=True)
    assert_body_timeout(sent)
    assert events == ["http.request", "http.disconnect"]


async def test_the_request_timeout_still_answers_504_when_it_comes_first() -> None:
    events: list[str] = []
    app = paced(reading_app([], events), read_timeout=5, request_timeout=0.1)
    async with within(3):
        sent, _ = await call_chunks(app, post(100), [], gap=0, stall=True)
    assert responses(sent) == [504]
    assert events == []  # the app was cancelled in its read, not told of a disconnect


async def test_a_cancellation_that_comes_with_the_body_deadline_is_not_swallowed() -> None:
    """A shutdown cancels the request's task at the same moment the body deadline does:
    the task must still end cancelled, with nothing sent."""
    sent = Captured()

    async def receive() -> dict[str, Any]:
        try:
            await asyncio.Event().wait()  # the body never comes
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # the second cancellation, before the first is handled
            raise
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.messages.append(message)

    app = BodyLimitMiddleware(reading_app([], []), 100, read_timeout=0.05, min_rate=0)
    task = asyncio.create_task(app(post(10), receive, send))
    async with within(3):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sent.messages == []


async def test_a_cancellation_while_reading_is_not_taken_for_the_deadline() -> None:
    sent = Captured()
    reading = asyncio.Event()

    async def receive() -> dict[str, Any]:
        reading.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.messages.append(message)

    app = BodyLimitMiddleware(reading_app([], []), 100, read_timeout=5)
    task = asyncio.create_task(app(post(10), receive, send))
    async with within(3):
        await reading.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sent.messages == []


async def test_a_server_whose_receive_returns_a_plain_future_is_cut_the_same() -> None:
    """Not every server's ``receive`` is a coroutine (granian's is native code)."""
    loop = asyncio.get_running_loop()
    sent = Captured()
    events: list[str] = []
    parts = iter([b"a" * 10])

    def receive() -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        part = next(parts, None)
        if part is not None:  # the first part comes a little later; then nothing
            message = {"type": "http.request", "body": part, "more_body": True}
            loop.call_later(0.02, future.set_result, message)
        return future

    async def send(message: Message) -> None:
        sent.messages.append(message)

    app = paced(reading_app([], events), read_timeout=0.1)
    async with within(3):
        await app(post(), receive, send)
    assert_body_timeout(sent)
    assert events == ["http.request", "http.disconnect"]
