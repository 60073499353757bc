# SPDX-License-Identifier: Apache-2.0
"""The kit's route table through the FastAPI adapter and the middleware stack, in-process.

The flows here are test flows (the app boundary): one that crashes, one that raises a
typed error, one that streams and then fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from genkit import ActionRunContext, Genkit
from pydantic import BaseModel

from genkit_endpoints.core.errors import UpstreamTimeout
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.routes import FlowRoute, RouteTable, RunContext
from genkit_endpoints.http.adapters.fastapi import create_fastapi_app, to_response
from genkit_endpoints.http.handlers import HttpReply
from genkit_endpoints.http.middleware.stack import HttpPolicy, build_stack
from genkit_endpoints.http.types import ASGIApp
from tests.unit.asgi_helpers import call, http_scope


class In(BaseModel):
    word: str = "hi"


class Out(BaseModel):
    echo: str


def build() -> tuple[ASGIApp, Readiness]:
    ai = Genkit()

    @ai.flow()
    async def crash(data: In) -> Out:
        raise RuntimeError("database password is hunter2")

    @ai.flow()
    async def slow_upstream(data: In) -> Out:
        raise UpstreamTimeout()

    @ai.flow(chunk_type=str)
    async def half_stream(data: In, ctx: ActionRunContext) -> str:
        ctx.send_chunk("first")
        raise RuntimeError("boom after a chunk")

    @ai.flow()
    async def echo(data: In) -> Out:
        return Out(echo=data.word)

    table = RouteTable.build(
        [
            FlowRoute(crash, "/crash", In, Out),
            FlowRoute(slow_upstream, "/slow", In, Out),
            FlowRoute(half_stream, "/half", In, stream_key="text"),
            FlowRoute(echo, "/echo", In, Out),
        ]
    )
    readiness = Readiness()
    return build_stack(
        create_fastapi_app(table, readiness, run=RunContext()), HttpPolicy(request_timeout=5)
    ), readiness


def post(path: str, body: bytes = b"{}") -> dict[str, object]:
    return http_scope(path, "POST", [(b"content-type", b"application/json")])


async def test_unexpected_flow_error_is_a_generic_500_problem() -> None:
    app, _ = build()
    sent = await call(app, post("/crash"), b"{}")
    assert sent.status == 500
    assert sent.headers[b"content-type"] == b"application/problem+json"
    body = json.loads(sent.body)
    assert body["detail"] == "The server could not complete the request."
    assert "hunter2" not in sent.body.decode()
    assert "RuntimeError" not in sent.body.decode()


async def test_typed_error_from_a_flow_keeps_its_status() -> None:
    app, _ = build()
    sent = await call(app, post("/slow"), b"{}")
    assert sent.status == 504
    assert json.loads(sent.body)["type"].endswith(":timeout")


async def test_stream_failure_after_a_chunk_ends_with_an_error_frame() -> None:
    app, _ = build()
    sent = await call(app, post("/half"), b"{}")
    assert sent.status == 200
    assert sent.body.startswith(b'data: {"chunk":"first"}\n\n')
    tail = sent.body.split(b"\n\n")[-2]
    assert tail.startswith(b"event: error\ndata: ")
    problem = json.loads(tail.split(b"data: ", 1)[1])
    assert problem["status"] == 500
    assert "boom" not in sent.body.decode()


async def test_callable_stream_failure_is_an_error_frame_without_event_line() -> None:
    app, _ = build()
    scope = http_scope("/flows/half_stream", "POST", [(b"accept", b"text/event-stream")])
    sent = await call(app, scope, b"")
    frames = [f for f in sent.body.split(b"\n\n") if f]
    assert frames[0] == b'data: {"message":"first"}'
    assert json.loads(frames[-1][len(b"data: ") :]) == {
        "error": {"status": "INTERNAL", "message": "The server could not complete the request."}
    }
    assert b"event:" not in sent.body


async def test_readiness_reports_draining_as_503() -> None:
    app, readiness = build()
    assert (await call(app, http_scope("/ready"))).status == 200
    readiness.start_draining()
    sent = await call(app, http_scope("/ready"))
    assert sent.status == 503
    assert json.loads(sent.body) == {"status": "unavailable", "checks": {"shutdown": "draining"}}


async def test_readiness_follows_the_status_its_components_report() -> None:
    app, readiness = build()
    readiness.set_status("redis", "failing")
    sent = await call(app, http_scope("/ready"))
    assert sent.status == 503
    assert json.loads(sent.body) == {
        "status": "unavailable",
        "checks": {"redis": "failing", "shutdown": "ok"},
    }
    readiness.set_status("redis", "ok")
    sent = await call(app, http_scope("/ready"))
    assert sent.status == 200
    assert json.loads(sent.body) == {"status": "ok", "checks": {"redis": "ok", "shutdown": "ok"}}


def test_route_table_rejects_duplicates_and_bad_paths() -> None:
    ai = Genkit()

    @ai.flow()
    async def one(data: In) -> Out:
        return Out(echo="1")

    with pytest.raises(ValueError, match="duplicate"):
        RouteTable.build([FlowRoute(one, "/a", In, Out), FlowRoute(one, "/b", In, Out)])
    with pytest.raises(ValueError, match="path"):
        FlowRoute(one, "no-slash", In, Out)
    with pytest.raises(ValueError, match="output_model"):
        FlowRoute(one, "/a", In)


class _Body:
    """A stream body that sends one frame and then waits forever; notes how it ended."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def frames(self) -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            await asyncio.Event().wait()
        finally:
            self.closed.set()


def _stream_response(body: _Body) -> Any:
    return to_response(HttpReply(status=200, stream=body.frames()))


async def test_a_hang_up_ends_a_stream_and_leaves_no_cancellation_behind() -> None:
    body, sent = _Body(), []
    hang_up = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            hang_up.set()

    async def request() -> str:
        await _stream_response(body)(http_scope("/s"), receive, send)
        await asyncio.sleep(0)  # a cancellation left pending would be raised here
        return "returned"

    task = asyncio.ensure_future(request())
    async with asyncio.timeout(5):
        assert await task == "returned"
    assert body.closed.is_set()  # the body (the flow behind it) was stopped
    assert task.cancelling() == 0
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


@pytest.mark.parametrize("hung_up_too", [False, True])
async def test_a_cancellation_from_elsewhere_still_cancels_a_stream(hung_up_too: bool) -> None:
    """A server shutting down cancels the request's task: that must not be swallowed,
    even when the client hung up at the same time."""
    body = _Body()
    disconnect = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await asyncio.sleep(0)

    task = asyncio.ensure_future(_stream_response(body)(http_scope("/s"), receive, send))
    async with asyncio.timeout(5):
        await asyncio.sleep(0.01)
        task.cancel()
        if hung_up_too:
            disconnect.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert task.cancelled()
    assert body.closed.is_set()
