# SPDX-License-Identifier: Apache-2.0
"""JSON nesting limit: a body nested too deep is a 422, never a 500.

Before the limit, parsers decided: pydantic refused around 255 levels, orjson (the
callable envelope) at 1024, and anything shallower reached the flow, also inside fields
the model ignores. Now one limit (32 by default) holds on every framework and on both
REST protocols, checked on the bytes before a parser sees them.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from genkit import Genkit
from pydantic import BaseModel

from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.json_depth import DEFAULT_JSON_MAX_DEPTH, json_too_deep
from genkit_endpoints.core.routes import FlowRoute, RouteTable, RunContext
from genkit_endpoints.http import handlers as http
from genkit_endpoints.http.adapters import FRAMEWORKS, create_framework_app
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.types import ASGIApp
from tests.unit.asgi_helpers import Captured, call, http_scope, lifespan
from tests.unit.grpc_harness import LEAKS, serving

JSON = (b"content-type", b"application/json")
DEPTH_ERROR = {
    "field": "body",
    "message": "JSON nested deeper than 32 levels",
    "type": "json_depth",
}


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def objects(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def body(field: str, value: bytes) -> bytes:
    """``{field: value}``: the object itself is one more level than ``value``."""
    return b'{"' + field.encode() + b'": ' + value + b"}"


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


# The scanner itself.


@pytest.mark.parametrize(
    ("doc", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'["[[[[", "]]]]"]', 1),
        (b'{"[": {"{": "}}}}"}}', 2),
        (b'["\\"[[[[["]', 1),  # an escaped quote does not end the string
        (b'["\\\\", [[]]]', 3),  # an escaped backslash does not escape the quote after it
        (b'["\\\\\\"[[[", []]', 2),
        (b"[[],[],[[]]]", 3),
    ],
)
def test_depth_counts_brackets_outside_strings_only(doc: bytes, depth: int) -> None:
    assert not json_too_deep(doc, max(depth, 1))
    if depth > 1:
        assert json_too_deep(doc, depth - 1)


_STRINGS = ("a[{", "]}\\", '\\"[', "\\", '"', "x\\]]", "", "[[[[[[[[", "é[\n")


def _random_json(rng: random.Random, level: int) -> Any:
    roll = rng.random()
    if level > 9 or roll < 0.3:
        return rng.choice([1, None, 2.5, *_STRINGS])
    if roll < 0.65:
        return [_random_json(rng, level + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(_STRINGS) + str(i): _random_json(rng, level + 1) for i in range(3)}


def test_depth_agrees_with_the_decoded_document_on_random_json() -> None:
    rng = random.Random(4)
    for _ in range(1500):
        value = _random_json(rng, 0)
        doc = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
        for limit in (1, 2, 3, 5, 8):
            assert json_too_deep(doc, limit) == (depth_of(value) > limit), (doc, limit)


@pytest.mark.parametrize("depth", [0, -1, True, 2.5])
def test_a_run_context_refuses_a_limit_that_is_not_a_positive_integer(depth: Any) -> None:
    with pytest.raises(ValueError, match="json_max_depth"):
        RunContext(json_max_depth=depth)
    assert RunContext().json_max_depth == DEFAULT_JSON_MAX_DEPTH


# Through every framework, REST and callable.


class TreeIn(BaseModel):
    """A model that takes any JSON in ``tree``: only the depth limit stops deep input."""

    name: str = "x"
    tree: Any = None


class TreeOut(BaseModel):
    depth: int


def tree_table() -> RouteTable:
    ai = Genkit()

    @ai.flow()
    async def measure(data: TreeIn) -> TreeOut:
        return TreeOut(depth=depth_of(data.tree))

    return RouteTable.build([FlowRoute(measure, "/measure", TreeIn, TreeOut)])


@asynccontextmanager
async def app_for(
    framework: str, table: RouteTable, run: RunContext | None = None
) -> AsyncIterator[ASGIApp]:
    app = build_stack(create_framework_app(framework, table, Readiness(), run=run))
    async with lifespan(app):
        yield app


async def post(app: ASGIApp, path: str, payload: bytes) -> Captured:
    return await call(app, http_scope(path, "POST", [JSON]), payload)


def outcome(sent: Captured) -> tuple[int, bytes, Any]:
    """Status, content type and the problem's ``errors`` (the body, if it is no problem)."""
    kind = sent.headers.get(b"content-type", b"")
    if kind != b"application/problem+json":
        return sent.status, kind, sent.body[:200]
    return sent.status, kind, json.loads(sent.body).get("errors")


def refused(limit: int = 32) -> tuple[int, bytes, Any]:
    message = f"JSON nested deeper than {limit} levels"
    return 422, b"application/problem+json", [{**DEPTH_ERROR, "message": message}]


TOO_DEEP = {
    "33 levels in a known field": body("tree", arrays(32)),
    "33 levels of objects": body("tree", objects(32)),
    "33 levels in an ignored field": body("unknown", arrays(32)),
    "objects in an ignored field": body("unknown", objects(32)),
    "1 000 levels": body("tree", arrays(999)),
    "100 000 levels": body("tree", arrays(99_999)),
    "100 000 unclosed": b"[" * 100_000,
    "1 000 levels at the top": arrays(1000),
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_bodies_nested_deeper_than_the_limit_are_422_on_every_framework(
    framework: str,
) -> None:
    async with app_for(framework, tree_table()) as app:
        got = {name: outcome(await post(app, "/measure", doc)) for name, doc in TOO_DEEP.items()}
    assert got == dict.fromkeys(TOO_DEEP, refused())


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_callable_envelopes_nested_too_deep_are_422_on_every_framework(
    framework: str,
) -> None:
    """The envelope counts: ``{"data": …}`` is one level of the body."""
    async with app_for(framework, tree_table()) as app:
        got = {
            name: outcome(await post(app, "/flows/measure", body("data", doc)))
            for name, doc in TOO_DEEP.items()
        }
        beside = b'{"data": {}, "extra": ' + arrays(40) + b"}"
        got["beside the data"] = outcome(await post(app, "/flows/measure", beside))
    assert got == dict.fromkeys([*TOO_DEEP, "beside the data"], refused())


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_bodies_at_the_limit_reach_the_flow_on_every_framework(framework: str) -> None:
    brackets_in_strings = b'{"name": "' + b"[{" * 90 + b'", "tree": ["\\"[[[["]}'
    async with app_for(framework, tree_table()) as app:
        at_limit = await post(app, "/measure", body("tree", arrays(31)))
        wide = await post(app, "/measure", body("tree", b"[" + b"[[]]," * 500 + b"[]]"))
        in_strings = await post(app, "/measure", brackets_in_strings)
        envelope = await post(app, "/flows/measure", body("data", body("tree", arrays(30))))
    assert (at_limit.status, json.loads(at_limit.body)) == (200, {"depth": 31})
    assert (wide.status, json.loads(wide.body)) == (200, {"depth": 3})
    assert (in_strings.status, json.loads(in_strings.body)) == (200, {"depth": 1})
    assert (envelope.status, json.loads(envelope.body)) == (200, {"result": {"depth": 30}})


async def test_the_callable_protocol_follows_the_run_context_limit() -> None:
    async with app_for("fastapi", tree_table(), RunContext(json_max_depth=4)) as app:
        ok = await post(app, "/flows/measure", body("data", body("tree", arrays(2))))
        deep = await post(app, "/flows/measure", body("data", body("tree", arrays(3))))
    assert (ok.status, json.loads(ok.body)) == (200, {"result": {"depth": 2}})
    assert outcome(deep) == refused(limit=4)


async def test_the_flow_endpoint_follows_the_limit_it_is_given() -> None:
    async def reply(payload: bytes, limit: int) -> http.HttpReply:
        table = tree_table()
        return await http.flow_endpoint(
            RunContext(json_max_depth=limit), table.by_path["/measure"], path="/measure",
            body=payload,
            content_type="application/json",
        )  # fmt: skip

    assert (await reply(body("tree", arrays(3)), 4)).status == 200
    refused = await reply(body("tree", arrays(4)), 4)
    assert refused.status == 422
    assert json.loads(refused.body)["errors"][0]["message"] == "JSON nested deeper than 4 levels"
    assert (await reply(body("tree", arrays(100)), 200)).status == 200


# gRPC: the request messages are flat strings (no JSON travels in a field), and protobuf
# stores unknown length-delimited fields as bytes without parsing them.


def _nested_unknown(depth: int) -> bytes:
    """A JokeRequest whose unknown field 15 nests ``depth`` messages deep."""
    inner = b""
    for _ in range(depth):
        size, varint = len(inner), bytearray()
        while True:
            byte, size = size & 0x7F, size >> 7
            varint.append(byte | (0x80 if size else 0))
            if not size:
                break
        inner = bytes([15 << 3 | 2]) + bytes(varint) + inner
    return pb.JokeRequest(name="Ada").SerializeToString() + inner


def _nested_groups(depth: int) -> bytes:
    """A JokeRequest with ``depth`` nested unknown groups (wire types 3/4) in field 15."""
    return bytes([15 << 3 | 3]) * depth + bytes([15 << 3 | 4]) * depth


async def test_grpc_ignores_deeply_nested_unknown_fields() -> None:
    async with serving() as h:
        rpc = h.channel.unary_unary(
            "/genkit.sample.v1.GenkitService/TellJoke",
            request_serializer=bytes,
            response_deserializer=pb.JokeResponse.FromString,
        )
        reply = await rpc(_nested_unknown(1000), timeout=10)
    assert "Ada" in reply.joke


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", None], ids=["garbage", "deep-groups"])
async def test_grpc_refuses_undecodable_messages_as_invalid_argument(payload: bytes | None) -> None:
    """protobuf refuses groups nested past 100 (and garbage); gRPC's own answer would be
    UNKNOWN naming protobuf's exception class — the servicer's decoder says it plainly."""
    payload = _nested_groups(100_000) if payload is None else payload
    async with serving() as h:
        rpc = h.channel.unary_unary(
            "/genkit.sample.v1.GenkitService/TellJoke",
            request_serializer=bytes,
            response_deserializer=pb.JokeResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await rpc(payload, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not any(leak in (caught.value.details() or "") for leak in LEAKS)
