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
from genkit import (
    ActionRunContext,
    Genkit,
    Message,
    ModelInfo,
    ModelRequest,
    ModelResponse,
    Part,
    Supports,
)

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.core.routes import RouteTable
from genkit_endpoints.http.adapters import FRAMEWORKS
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from tests.support.image_server import offline_fetcher
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


class RecordingModel:
    """A model that keeps every request it is sent, so a test can read the prompt itself."""

    NAME = "test/recording"

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def answer(self, request: ModelRequest, ctx: ActionRunContext) -> ModelResponse:
        self.requests.append(request.model_dump_json())
        return ModelResponse(message=Message(role="model", content=[Part.from_text("A joke.")]))

    def table(self) -> RouteTable:
        ai = Genkit(model=self.NAME, prompt_dir=PROMPTS_DIR)
        ai.define_model(name=self.NAME, fn=self.answer, info=ModelInfo(supports=Supports()))
        return build_routes(ai, ModelClient(ai, ModelCallPolicyConfig()), offline_fetcher())


MARKER = "Zebedee-Quixote-7f3a"  # a username no prompt template could contain by chance


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_the_username_never_reaches_the_prompt(framework: str) -> None:
    model = RecordingModel()
    async with serving(framework, model.table()) as app:
        for path, body in (
            ("/tell-joke", {"name": "Ada", "username": MARKER}),
            ("/tell-joke/stream", {"name": "Ada", "username": MARKER}),
            ("/flows/tell_joke", {"data": {"name": "Ada", "username": MARKER}}),
        ):
            got = await call(app, http_scope(path, "POST", [JSON]), json.dumps(body).encode())
            assert got.status == 200, (path, got.body)
    assert len(model.requests) == 3
    assert all("Ada" in r for r in model.requests)  # the name is in the prompt...
    assert not [r for r in model.requests if MARKER in r]  # ...the username never


async def test_grpc_never_puts_the_username_into_the_prompt() -> None:
    model = RecordingModel()
    async with grpc_serving(patch=lambda _ai, _table: model.table()) as h:
        reply = await h.stub.TellJoke(pb.JokeRequest(name="Ada", username=MARKER))
        async for _ in h.stub.TellJokeStream(pb.JokeRequest(name="Ada", username=MARKER)):
            pass
    assert reply.username == MARKER
    assert len(model.requests) == 2
    assert not [r for r in model.requests if MARKER in r]


async def test_grpc_echoes_the_username_of_an_unauthenticated_caller() -> None:
    async with grpc_serving() as h:
        reply = await h.stub.TellJoke(pb.JokeRequest(name="Ada", username="bob"))
        empty = await h.stub.TellJoke(pb.JokeRequest(name="Ada"))
    assert reply.username == "bob"
    assert empty.username == ""
    assert reply.joke == empty.joke
