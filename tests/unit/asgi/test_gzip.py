# SPDX-License-Identifier: Apache-2.0
"""Gzip of JSON responses: only when worth it and wanted, never event streams."""

from __future__ import annotations

import gzip as gzip_lib
import json
from typing import Any

import pytest

from genkit_endpoints.http.middleware.gzip import GzipMiddleware
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.types import Receive, Scope, Send
from tests.unit.asgi._support import assert_secured, header_values, json_app
from tests.unit.asgi_helpers import call, http_scope

BIG = json.dumps({"items": [{"n": i, "text": "lorem ipsum " * 3} for i in range(200)]}).encode()


def gz(accept: bytes | None = b"gzip, deflate, br") -> dict[str, Any]:
    return http_scope(headers=[] if accept is None else [(b"accept-encoding", accept)])


async def test_small_json_is_not_compressed() -> None:
    sent = await call(GzipMiddleware(json_app(b'{"a": 1}'), 1024), gz())
    assert b"content-encoding" not in sent.headers
    assert sent.body == b'{"a": 1}'


async def test_large_json_is_compressed_and_decompresses_to_the_original() -> None:
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(BIG)).encode())]
    sent = await call(GzipMiddleware(json_app(BIG, headers=hdrs), 1024), gz())
    assert sent.headers[b"content-encoding"] == b"gzip"
    assert sent.headers[b"vary"] == b"Accept-Encoding"
    assert header_values(sent, b"content-length") == [str(len(sent.body)).encode()]
    assert len(sent.body) < len(BIG)
    assert gzip_lib.decompress(sent.body) == BIG


async def test_a_json_body_streamed_in_parts_is_compressed_as_it_streams() -> None:
    parts = [BIG[i : i + 500] for i in range(0, len(BIG), 500)]

    async def streamed(scope: Scope, receive: Receive, send: Send) -> None:
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
        await send(start)
        for i, part in enumerate(parts):
            await send(
                {"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1}
            )

    sent = await call(GzipMiddleware(streamed, 1024), gz())
    assert sent.headers[b"content-encoding"] == b"gzip"
    assert b"content-length" not in sent.headers
    assert gzip_lib.decompress(sent.body) == BIG


async def test_large_problem_json_is_compressed() -> None:
    problem = json.dumps({"status": 422, "errors": [{"field": f"f{i}"} for i in range(300)]})
    app = json_app(problem.encode(), headers=[(b"content-type", b"application/problem+json")])
    sent = await call(GzipMiddleware(app, 1024), gz(b"gzip"))
    assert sent.headers[b"content-encoding"] == b"gzip"
    assert gzip_lib.decompress(sent.body) == problem.encode()


async def test_event_streams_are_never_compressed() -> None:
    frames = [b"data: " + b"x" * 2000 + b"\n\n"] * 3

    async def sse(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for frame in frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    sent = await call(build_stack(sse, HttpPolicy(gzip_min_size=10)), gz())
    assert b"content-encoding" not in sent.headers
    assert sent.body == b"".join(frames)
    assert header_values(sent, b"cache-control") == [b"no-cache"]
    # Each frame went out as it was produced, not buffered into one message.
    assert len([m for m in sent.messages if m.get("body")]) == 3


@pytest.mark.parametrize(
    "accept", [None, b"gzip;q=0", b"identity", b"br", b"gzip;q=0.000, deflate", b"gzip;q=abc"]
)
async def test_clients_that_refuse_gzip_get_the_plain_body(accept: bytes | None) -> None:
    sent = await call(GzipMiddleware(json_app(BIG), 1024), gz(accept))
    assert b"content-encoding" not in sent.headers
    assert sent.body == BIG


@pytest.mark.parametrize("accept", [b"GZIP", b"deflate, gzip;q=0.5", b"*", b"br;q=1, gzip ; q=1.0"])
async def test_gzip_accepted_in_any_spelling_compresses(accept: bytes) -> None:
    sent = await call(GzipMiddleware(json_app(BIG), 1024), gz(accept))
    assert gzip_lib.decompress(sent.body) == BIG


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"text/plain")],
        [(b"content-type", b"application/json"), (b"content-encoding", b"br")],
    ],
    ids=["not-json", "already-encoded"],
)
async def test_other_bodies_are_left_alone(headers: list[tuple[bytes, bytes]]) -> None:
    sent = await call(GzipMiddleware(json_app(BIG, headers=headers), 1024), gz())
    assert sent.body == BIG
    assert header_values(sent, b"content-encoding") == [
        v for k, v in headers if k == b"content-encoding"
    ]


async def test_gzip_min_size_zero_turns_compression_off() -> None:
    sent = await call(build_stack(json_app(BIG), HttpPolicy(gzip_min_size=0)), gz())
    assert b"content-encoding" not in sent.headers
    assert sent.body == BIG


async def test_compressed_responses_still_carry_the_security_headers() -> None:
    sent = await call(build_stack(json_app(BIG), HttpPolicy()), gz())
    assert sent.headers[b"content-encoding"] == b"gzip"
    assert_secured(sent)
