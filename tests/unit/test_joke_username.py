# SPDX-License-Identifier: Apache-2.0
"""The joke contract's ``username``: accepted, echoed, never in the prompt, and overridden
by an authenticated caller's name.

Old clients of the REST API and of the proto send ``username`` and read it back; without
authentication it must round-trip on every framework, on the Genkit callable protocol and
on gRPC. (Authenticated callers: ``tests/unit/test_grpc_auth.py`` and
``tests/e2e/test_auth.py`` show the principal's name wins.)
"""

from __future__ import annotations

import json

import pytest

from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.http.adapters import FRAMEWORKS
from tests.unit.asgi_helpers import call, http_scope
from tests.unit.grpc_harness import serving as grpc_serving
from tests.unit.test_framework_adapters import JSON, sample_table, serving

pytestmark = pytest.mark.timeout(60)


async def _post(
    framework: str, path: str, body: dict[str, object]
) -> tuple[int, dict[str, object]]:
    async with serving(framework, sample_table()) as app:
        got = await call(app, http_scope(path, "POST", [JSON]), json.dumps(body).encode())
    return got.status, json.loads(got.body)


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_rest_echoes_the_username_of_an_unauthenticated_caller(framework: str) -> None:
    status, body = await _post(framework, "/tell-joke", {"name": "Ada", "username": "bob"})
    assert status == 200
    assert body["username"] == "bob"
    status, body = await _post(framework, "/tell-joke", {"name": "Ada"})
    assert (status, body["username"]) == (200, None)


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_callable_protocol_echoes_the_username(framework: str) -> None:
    status, body = await _post(framework, "/flows/tell_joke", {"data": {"username": "bob"}})
    assert status == 200
    result = body["result"]
    assert isinstance(result, dict)
    assert result["username"] == "bob"


async def test_a_username_over_200_characters_is_refused_not_cut() -> None:
    status, body = await _post("fastapi", "/tell-joke", {"username": "b" * 201})
    assert status == 422
    errors = body["errors"]
    assert isinstance(errors, list)
    assert [e["field"] for e in errors] == ["username"]


async def test_the_username_never_reaches_the_prompt() -> None:
    """The offline model answers from the request alone (it is seeded by a hash of it), so
    two usernames giving the same joke means the model request did not contain them."""
    jokes = set()
    for username in ("bob", "Zebedee Quixote", None):
        status, body = await _post("fastapi", "/tell-joke", {"name": "Ada", "username": username})
        assert status == 200
        jokes.add(body["joke"])
    assert len(jokes) == 1
    # ...while the name, which is in the prompt, does change the answer.
    _, other = await _post("fastapi", "/tell-joke", {"name": "Grace", "username": "bob"})
    assert other["joke"] not in jokes


async def test_grpc_echoes_the_username_of_an_unauthenticated_caller() -> None:
    async with grpc_serving() as h:
        reply = await h.stub.TellJoke(pb.JokeRequest(name="Ada", username="bob"))
        empty = await h.stub.TellJoke(pb.JokeRequest(name="Ada"))
    assert reply.username == "bob"
    assert empty.username == ""
    assert reply.joke == empty.joke
