# SPDX-License-Identifier: Apache-2.0
"""One REST contract on FastAPI, Litestar and Quart: the same requests get the same bytes.

Every app is built by ``create_framework_app`` from one route table, wrapped in the kit's
middleware stack and run inside its ASGI lifespan; requests are raw ASGI messages. FastAPI
is the reference: comparing it with a second FastAPI app proves the answers are
deterministic, so a difference on another framework is the adapter's fault.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

import pytest
import structlog
from genkit import ActionRunContext, Genkit
from pydantic import BaseModel, model_validator

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.routes import FlowRoute, RouteTable
from genkit_endpoints.http.adapters import (
    FRAMEWORKS,
    MissingExtraError,
    create_framework_app,
)
from genkit_endpoints.http.middleware.stack import HttpPolicy, build_stack
from genkit_endpoints.http.sse import SSE_HEADERS
from genkit_endpoints.http.types import ASGIApp
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from tests.support.image_server import offline_fetcher
from tests.unit.asgi_helpers import Captured, call, call_chunks, http_scope, lifespan, within
from tests.unit.conftest import CrashReports

RID = (b"x-request-id", b"parity-check")  # fixed, so problem bodies match byte for byte
JSON = (b"content-type", b"application/json")
GENERIC_500 = "The server could not complete the request."


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    headers: Sequence[tuple[bytes, bytes]] = (JSON,)
    body: bytes = b"{}"
    status: int = 200
    query: bytes = b""
    raw_path: bytes | None = None

    def scope(self) -> dict[str, Any]:
        scope = http_scope(self.path, self.method, [RID, *self.headers])
        scope["query_string"] = self.query
        scope["raw_path"] = self.raw_path or self.path.encode()
        return scope


@dataclass(frozen=True)
class Answer:
    """What a client can observe: status, headers, and each body chunk as it was sent."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    chunks: tuple[bytes, ...]

    @classmethod
    def of(cls, sent: Captured) -> Answer:
        chunks = tuple(
            m["body"] for m in sent.messages if m["type"] == "http.response.body" and m.get("body")
        )
        headers = tuple(sorted((k.lower(), v) for k, v in sent.start["headers"]))
        return cls(sent.status, headers, chunks)


FLOW_PATHS = (
    "/tell-joke", "/tell-joke/stream", "/tell-story/stream", "/translate", "/describe-image",
    "/generate-character", "/chat", "/generate-code", "/review-code",
)  # fmt: skip
NO_TYPE: Sequence[tuple[bytes, bytes]] = ()
NESTED = b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}"
LONG_NAME = b'{"name": "' + b"x" * 201 + b'"}'
SSE = (b"accept", b"text/event-stream")
GZIP = (b"accept-encoding", b"gzip")


def typed(content_type: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type)]


CASES = (
    Case("health", "GET", "/health", NO_TYPE, b""),
    Case("ready", "GET", "/ready", NO_TYPE, b""),
    *(Case(f"empty-object {path}", "POST", path) for path in FLOW_PATHS),
    Case("custom joke", "POST", "/tell-joke", body=b'{"name": "Ada", "username": "ada"}'),
    Case("custom code", "POST", "/generate-code", body=b'{"language": "rust"}'),
    Case("custom story", "POST", "/tell-story/stream", body=b'{"topic": "owls"}'),
    Case("empty body, no type", "POST", "/tell-joke", NO_TYPE, b""),
    Case("json with charset", "POST", "/chat", typed(b"application/json; charset=utf-8")),
    Case("vendor json", "POST", "/tell-joke", typed(b"application/vnd.api+json")),
    Case("query string ignored", "POST", "/tell-joke", query=b"x=1"),
    Case("malformed json", "POST", "/tell-joke", body=b'{"name": ', status=422),
    Case("json array", "POST", "/tell-joke", body=b"[]", status=422),
    Case("json null", "POST", "/translate", body=b"null", status=422),
    Case("deeply nested", "POST", "/tell-joke", body=NESTED, status=422),
    Case("201-char name", "POST", "/tell-joke", body=LONG_NAME, status=422),
    Case("wrong type", "POST", "/generate-character", body=b'{"name": 5}', status=422),
    Case("text/plain", "POST", "/translate", typed(b"text/plain"), b"name=1", 415),
    Case("form", "POST", "/translate", typed(b"application/x-www-form-urlencoded"), b"a=1", 415),
    Case("missing content type", "POST", "/translate", NO_TYPE, b'{"text": "hi"}', 415),
    Case("unknown route", "POST", "/nope", status=404),
    Case("root", "GET", "/", NO_TYPE, b"", 404),
    Case("trailing slash", "POST", "/tell-joke/", status=404),
    Case("double slash", "GET", "//health", NO_TYPE, b"", 404),
    Case("empty segment", "POST", "/tell-joke//stream", status=404),
    Case("GET on POST route", "GET", "/tell-joke", NO_TYPE, b"", 405),
    Case("PUT", "PUT", "/translate", status=405),
    Case("DELETE", "DELETE", "/chat", NO_TYPE, b"", 405),
    Case("OPTIONS", "OPTIONS", "/tell-joke", NO_TYPE, b"", 405),
    Case("HEAD", "HEAD", "/tell-joke/stream", NO_TYPE, b"", 405),
    Case("POST on health", "POST", "/health", status=405),
    Case("HEAD on health", "HEAD", "/health", NO_TYPE, b"", 405),
    Case("OPTIONS on ready", "OPTIONS", "/ready", NO_TYPE, b"", 405),
    Case("PATCH on callable", "PATCH", "/flows/tell_joke", status=405),
    Case("unknown method", "BREW", "/tell-joke", status=405),
    Case("OPTIONS on unknown route", "OPTIONS", "/nope", NO_TYPE, b"", 404),
    Case("callable unknown flow", "POST", "/flows/unknown_flow", status=404),
    Case("callable no name", "POST", "/flows/", status=404),
    Case("callable root", "POST", "/flows", status=404),
    Case("callable nested", "POST", "/flows/tell_joke/more", status=404),
    Case("callable encoded name", "POST", "/flows/café", raw_path=b"/flows/caf%C3%A9", status=404),
    Case("callable ? in name", "POST", "/flows/what?", raw_path=b"/flows/what%3F", status=404),
    Case("callable unary", "POST", "/flows/tell_joke", body=b'{"data": {"name": "Ada"}}'),
    Case("callable null data", "POST", "/flows/generate_character", body=b'{"data": null}'),
    Case("callable streaming flow, unary", "POST", "/flows/tell_story", body=b'{"data": {}}'),
    Case("callable ?stream=true", "POST", "/flows/tell_joke_stream", query=b"stream=true"),
    Case("callable accept sse", "POST", "/flows/tell_story", [JSON, SSE]),
    Case("callable malformed", "POST", "/flows/tell_joke", body=b"{", status=422),
    Case("callable non-object", "POST", "/flows/tell_joke", body=b"[1]", status=422),
    Case("callable bad input", "POST", "/flows/tell_joke", body=b'{"data":{"name":5}}', status=422),
    Case("callable text/plain", "POST", "/flows/tell_joke", typed(b"text/plain"), b"x", 415),
    Case("sse, gzip accepted", "POST", "/tell-joke/stream", [JSON, GZIP]),
    Case("json, gzip accepted", "POST", "/generate-code", [JSON, GZIP]),
    Case("docs off", "GET", "/docs", NO_TYPE, b"", 404),
    Case("openapi off", "GET", "/openapi.json", NO_TYPE, b"", 404),
    Case("schema off", "GET", "/schema", NO_TYPE, b"", 404),
)  # fmt: skip


class FrozenClock(datetime):
    """The clock of the `get_current_time` tool, whose answer the translation echoes."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> FrozenClock:
        return cls(2025, 1, 2, 3, 4, 5, tzinfo=tz or UTC)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("endpoints_hello.flows.datetime", FrozenClock)


def sample_table() -> RouteTable:
    ai = Genkit(plugins=[OfflineModel()], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    return build_routes(ai, ModelClient(ai, ModelCallPolicyConfig()), offline_fetcher())


@asynccontextmanager
async def serving(
    framework: str,
    table: RouteTable,
    *,
    debug: bool = False,
    request_timeout: float = 5,
    body_read_timeout: float = 10,
) -> AsyncIterator[ASGIApp]:
    """The framework app for ``table`` in the kit's stack, inside its running lifespan."""
    app = create_framework_app(framework, table, Readiness(), debug=debug, title="parity")
    policy = HttpPolicy(request_timeout=request_timeout, body_read_timeout=body_read_timeout)
    stacked = build_stack(app, policy)
    async with lifespan(stacked):
        yield stacked


async def answers(framework: str, cases: Sequence[Case]) -> dict[str, Answer]:
    async with serving(framework, sample_table()) as app:
        return {case.name: Answer.of(await call(app, case.scope(), case.body)) for case in cases}


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_every_request_gets_the_same_bytes_as_on_fastapi(framework: str) -> None:
    expected = await answers("fastapi", CASES)
    got = await answers(framework, CASES)
    assert {c.name: expected[c.name].status for c in CASES} == {c.name: c.status for c in CASES}
    differ = {name: (expected[name], got[name]) for name in expected if got[name] != expected[name]}
    assert not differ, f"{framework} differs from FastAPI on: {sorted(differ)}\n{differ}"
    # The reference itself, where the frameworks disagree most out of the box:
    assert dict(got["HEAD on health"].headers)[b"allow"] == b"GET"
    assert dict(got["OPTIONS"].headers)[b"allow"] == b"POST"
    problem = json.loads(got["callable ? in name"].chunks[0])
    assert (problem["instance"], problem["request_id"]) == ("/flows/what%3F", "parity-check")


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_sse_is_sent_frame_by_frame_uncompressed(framework: str) -> None:
    case = Case("sse", "POST", "/tell-story/stream", [JSON, (b"accept-encoding", b"gzip, br")])
    answer = (await answers(framework, [case]))["sse"]
    headers = dict(answer.headers)
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert {k.encode(): v.encode() for k, v in SSE_HEADERS}.items() <= headers.items()
    assert b"content-encoding" not in headers
    assert b"content-length" not in headers
    assert len(answer.chunks) > 2  # one message per frame, nothing buffered
    assert all(chunk.startswith(b"data: ") and chunk.endswith(b"\n\n") for chunk in answer.chunks)
    assert json.loads(answer.chunks[-1][len(b"data: ") :])["done"] is True


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_lifespan_is_entered_at_startup_and_left_at_shutdown(framework: str) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def recording_lifespan(_: Any) -> AsyncIterator[None]:
        events.append("start")
        yield
        events.append("stop")

    app = create_framework_app(framework, sample_table(), Readiness(), lifespan=recording_lifespan)
    stacked = build_stack(app, HttpPolicy(request_timeout=5))
    assert events == []
    async with lifespan(stacked):
        assert events == ["start"]
        assert (await call(stacked, http_scope("/health"))).status == 200
    assert events == ["start", "stop"]


DOCS = {
    "fastapi": ("/docs", "/openapi.json"),
    "litestar": ("/schema", "/schema/openapi.json"),
    "quart": (),  # Quart has no docs routes; debug adds none
}
ALL_DOCS = sorted({path for paths in DOCS.values() for path in paths})


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("debug", [True, False])
async def test_docs_routes_exist_only_in_debug(framework: str, debug: bool) -> None:
    async with serving(framework, sample_table(), debug=debug) as app:
        statuses = {path: (await call(app, http_scope(path))).status for path in ALL_DOCS}
    served = set(DOCS[framework]) if debug else set()
    assert statuses == {path: 200 if path in served else 404 for path in ALL_DOCS}


class In(BaseModel):
    word: str = "hi"


class Out(BaseModel):
    echo: str


class Explosive(BaseModel):
    """Its validation raises a non-validation error, which escapes into the framework."""

    word: str = "hi"

    @model_validator(mode="before")
    @classmethod
    def explode(cls, data: Any) -> Any:
        raise RuntimeError("secret token abc123")


@dataclass
class Probe:
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


def failing_table(probe: Probe) -> RouteTable:
    ai = Genkit()

    @ai.flow()
    async def crash(data: In) -> Out:
        raise RuntimeError("database password is hunter2")

    @ai.flow()
    async def explosive(data: Explosive) -> Out:
        return Out(echo=data.word)

    @ai.flow(chunk_type=str)
    async def endless(data: In, ctx: ActionRunContext) -> str:
        try:
            while True:
                ctx.send_chunk("tick")
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            probe.cancelled.set()
            raise

    @ai.flow(chunk_type=str)
    async def crash_midstream(data: In, ctx: ActionRunContext) -> str:
        ctx.send_chunk("tick")
        raise RuntimeError("database password is hunter2")

    @ai.flow()
    async def stuck(data: In) -> Out:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            probe.cancelled.set()
            raise
        return Out(echo="late")

    return RouteTable.build(
        [
            FlowRoute(crash, "/crash", In, Out),
            FlowRoute(explosive, "/explosive", Explosive, Out),
            FlowRoute(endless, "/endless", In, stream_key="text"),
            FlowRoute(crash_midstream, "/crash-midstream", In, stream_key="text"),
            FlowRoute(stuck, "/stuck", In, Out),
        ]
    )


async def test_crashes_are_the_same_generic_500_everywhere(crash_reports: CrashReports) -> None:
    paths = ("/crash", "/explosive", "/flows/crash", "/flows/explosive")
    bodies: dict[str, dict[str, bytes]] = {}
    for framework in FRAMEWORKS:
        crash_reports.clear()
        async with serving(framework, failing_table(Probe())) as app:
            with structlog.testing.capture_logs() as logs:
                sent = {p: await call(app, Case(p, "POST", p).scope(), b"{}") for p in paths}
        assert {p: s.status for p, s in sent.items()} == dict.fromkeys(paths, 500)
        bodies[framework] = {p: s.body for p, s in sent.items()}
        for path, body in bodies[framework].items():
            assert json.loads(body)["detail"] == GENERIC_500, path
            assert b"hunter2" not in body
            assert b"abc123" not in body
            assert b"RuntimeError" not in body
        # Each error escaping into the framework (both /explosive) is logged exactly once.
        escaped = [e for e in logs if e["event"] == "unhandled_error"]
        assert len(escaped) == 2, (framework, logs)
        # A flow's own crash (both /crash) never reaches the framework: the route logs
        # it, once, with the flow's exception and its traceback.
        crashed = [e for e in logs if e["event"] == "flow_failed"]
        assert [e["flow"] for e in crashed] == ["crash", "crash"], (framework, logs)
        for event in crashed:
            assert isinstance(event["exc_info"], RuntimeError)
            assert event["exc_info"].__traceback__ is not None
        # Every 500 is one crash report of the exception that caused it, wherever it ended
        # (the framework's handler, the error envelope or the route), never two.
        logged = [e["exc_info"] for e in logs if e["event"] in ("unhandled_error", "flow_failed")]
        assert len(crash_reports) == len(paths), (framework, crash_reports)
        assert sorted(map(id, crash_reports)) == sorted(map(id, logged)), framework
    assert bodies["litestar"] == bodies["fastapi"]
    assert bodies["quart"] == bodies["fastapi"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_request_timeout_answers_504_and_cancels_the_flow(
    framework: str, crash_reports: CrashReports
) -> None:
    probe = Probe()
    async with serving(framework, failing_table(probe), request_timeout=0.2) as app:
        sent = await call(app, Case("stuck", "POST", "/stuck").scope(), b"{}")
        assert sent.status == 504
        async with asyncio.timeout(2):
            await probe.cancelled.wait()  # Quart left its view task running (adapter fix)
    assert crash_reports == []  # a timeout is no bug


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_stream_that_crashes_ends_with_a_500_frame_and_one_logged_traceback(
    framework: str, crash_reports: CrashReports
) -> None:
    async with serving(framework, failing_table(Probe())) as app:
        with structlog.testing.capture_logs() as logs:
            sent = await call(app, Case("crash", "POST", "/crash-midstream").scope(), b"{}")
    assert sent.status == 200
    assert sent.body.startswith(b'data: {"chunk":"tick"}\n\nevent: error\ndata: ')
    assert b'"status":500' in sent.body
    assert b"hunter2" not in sent.body
    (failure,) = [e for e in logs if e["log_level"] == "error"]
    assert failure["event"] == "flow_failed"
    assert isinstance(failure["exc_info"], RuntimeError)
    assert crash_reports == [failure["exc_info"]]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("chunks", [[], [b'{"name": "R']], ids=["never-starts", "stops-midway"])
async def test_a_stalled_body_is_408_on_every_framework(
    framework: str, chunks: list[bytes]
) -> None:
    """The framework reads the body its own way (Quart in a task of its own); each ends
    with the kit's 408 and a closed connection, never the framework's error for a body
    cut short, and the flow never runs."""
    async with serving(framework, sample_table(), body_read_timeout=0.2) as app:
        scope = Case("stalled", "POST", "/tell-joke", [JSON, (b"content-length", b"40")]).scope()
        async with within(3):
            sent, _ = await call_chunks(app, scope, chunks, gap=0, stall=True)
    assert [m["status"] for m in sent.messages if m["type"] == "http.response.start"] == [408]
    assert sent.headers[b"connection"] == b"close"
    problem = json.loads(sent.body)
    assert (problem["status"], problem["instance"]) == (408, "/tell-joke")


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_client_disconnect_cancels_a_stream(framework: str) -> None:
    probe = Probe()
    async with serving(framework, failing_table(probe)) as app:
        async with asyncio.timeout(5):
            sent = await call(
                app, Case("endless", "POST", "/endless").scope(), b"{}", leave_early=True
            )
            await probe.cancelled.wait()
    assert sent.status == 200
    assert sent.body.startswith(b'data: {"chunk":"tick"}\n\n')


@pytest.mark.parametrize("framework", ["fastapi", "litestar", "quart"])
@pytest.mark.parametrize("host", [b"bad host", b"a/b", b"user@host", b"x:1:2"])
async def test_malformed_host_header_is_a_400_problem_on_every_framework(
    framework: str, host: bytes
) -> None:
    """The kit judges the Host header, not the framework (Litestar alone used to refuse)."""
    async with serving(framework, sample_table()) as app:
        sent = await call(app, http_scope("/health", headers=[RID, (b"host", host)]))
    assert sent.status == 400
    assert sent.headers[b"content-type"] == b"application/problem+json"
    assert b"Host header is malformed" in sent.body


def test_unknown_framework_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown framework 'django'"):
        create_framework_app("django", RouteTable.build([]), Readiness())


@pytest.mark.parametrize("framework", ["litestar", "quart"])
def test_missing_framework_names_its_extra(framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry makes `import <framework>` fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, framework, None)
    monkeypatch.delitem(sys.modules, f"genkit_endpoints.http.adapters.{framework}", raising=False)
    with pytest.raises(MissingExtraError, match=rf"pip install 'genkit-endpoints\[{framework}\]'"):
        create_framework_app(framework, RouteTable.build([]), Readiness())
