# SPDX-License-Identifier: Apache-2.0
"""The gRPC contract: committed stubs match the proto, wire-compatible fields, a handler per RPC.

Generated stubs are committed and a test proves they match the proto; field names and
numbers of the reference sample's messages never change; every RPC of the service is
served (none answers UNIMPLEMENTED), which a real server proves by calling each method
found in the descriptor with an empty request.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from genkit import Genkit
from google.protobuf import message_factory

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.core.health import Readiness
from genkit_endpoints.core.routes import RouteTable
from genkit_endpoints.grpc.config import GrpcConfig
from genkit_endpoints.grpc.server import create_grpc_server
from genkit_endpoints.grpc.servicer import build_method_handlers
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from tests.support.image_server import offline_fetcher

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "apps" / "endpoints-hello" / "src" / "endpoints_hello" / "generated"
PROTO = GENERATED.parent / "protos" / "genkit_sample.proto"
SERVICE = pb.DESCRIPTOR.services_by_name["GenkitService"]

# The reference sample's messages, (field name, number) in order: frozen for old clients.
WIRE = {
    "JokeRequest": [("name", 1), ("username", 2)],
    "JokeResponse": [("joke", 1), ("username", 2)],
    "TranslateRequest": [("text", 1), ("target_language", 2)],
    "TranslationResponse": [
        ("original_text", 1),
        ("translated_text", 2),
        ("target_language", 3),
        ("confidence", 4),
    ],
    "ImageRequest": [("image_url", 1)],
    "ImageResponse": [("description", 1), ("image_url", 2)],
    "CharacterRequest": [("name", 1)],
    "Skills": [("strength", 1), ("charisma", 2), ("endurance", 3)],
    "RpgCharacter": [("name", 1), ("back_story", 2), ("abilities", 3), ("skills", 4)],
    "ChatRequest": [("question", 1)],
    "ChatResponse": [("answer", 1), ("persona", 2)],
    "StoryRequest": [("topic", 1)],
    "StoryChunk": [("text", 1)],
    "StoryResponse": [("text", 1)],
    "CodeRequest": [("description", 1), ("language", 2)],
    "CodeResponse": [("code", 1), ("language", 2), ("explanation", 3), ("filename", 4)],
    "CodeReviewRequest": [("code", 1), ("language", 2)],
    "CodeReviewResponse": [("review", 1)],
    "HealthRequest": [],
    "HealthResponse": [("status", 1)],
    "JokeChunk": [("text", 1)],
}
RPCS = {  # name: (request, response, server streaming)
    "Health": ("HealthRequest", "HealthResponse", False),
    "TellJoke": ("JokeRequest", "JokeResponse", False),
    "TellJokeStream": ("JokeRequest", "JokeChunk", True),
    "TranslateText": ("TranslateRequest", "TranslationResponse", False),
    "DescribeImage": ("ImageRequest", "ImageResponse", False),
    "GenerateCharacter": ("CharacterRequest", "RpgCharacter", False),
    "PirateChat": ("ChatRequest", "ChatResponse", False),
    "TellStory": ("StoryRequest", "StoryChunk", True),
    "GenerateCode": ("CodeRequest", "CodeResponse", False),
    "ReviewCode": ("CodeReviewRequest", "CodeReviewResponse", False),
}


def app_table() -> RouteTable:
    ai = Genkit(plugins=[OfflineModel()], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    return build_routes(ai, ModelClient(ai, ModelCallPolicyConfig()), offline_fetcher())


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "gen_protos.py"
    subprocess.run(
        [sys.executable, str(script), "--proto", str(PROTO), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    fresh = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    committed = sorted(p.name for p in GENERATED.iterdir() if p.is_file())
    assert fresh == committed
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (GENERATED / name).read_bytes(), name


def test_grpc_module_imports_the_messages_relatively() -> None:
    text = (GENERATED / "genkit_sample_pb2_grpc.py").read_text(encoding="utf-8")
    assert "from . import genkit_sample_pb2 as" in text
    assert "\nimport genkit_sample_pb2" not in text


def test_package_service_and_rpcs_are_as_documented() -> None:
    assert pb.DESCRIPTOR.package == "genkit.sample.v1"
    assert SERVICE.full_name == "genkit.sample.v1.GenkitService"
    found = {
        m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in SERVICE.methods
    }
    assert found == RPCS
    assert not any(m.client_streaming for m in SERVICE.methods)


@pytest.mark.parametrize("message", sorted(WIRE))
def test_message_fields_keep_their_names_and_numbers(message: str) -> None:
    descriptor = pb.DESCRIPTOR.message_types_by_name[message]
    assert [(f.name, f.number) for f in descriptor.fields] == WIRE[message]


def test_back_story_is_back_story_in_the_json_mapping() -> None:
    field = pb.RpgCharacter.DESCRIPTOR.fields_by_name["back_story"]
    assert field.json_name == "backStory"


def test_every_rpc_has_a_handler_of_the_right_kind() -> None:
    handlers = build_method_handlers(app_table(), SERVICE)
    assert set(handlers) == {m.name for m in SERVICE.methods}
    for method in SERVICE.methods:
        handler = handlers[method.name]
        assert handler.response_streaming == method.server_streaming
        assert not handler.request_streaming


def test_an_rpc_without_a_route_is_a_build_error() -> None:
    table = app_table()
    without_story = RouteTable.build(r for r in table if r.grpc_method != "TellStory")
    with pytest.raises(ValueError, match="TellStory has no route"):
        build_method_handlers(without_story, SERVICE)


def test_a_route_naming_an_unknown_rpc_is_a_build_error() -> None:
    table = RouteTable.build(
        dataclasses.replace(r, grpc_method="TellJokes") if r.grpc_method == "TellJoke" else r
        for r in app_table()
    )
    with pytest.raises(ValueError, match="TellJokes"):
        build_method_handlers(table, SERVICE)


def test_streaming_mismatch_is_a_build_error() -> None:
    routes = {r.grpc_method: r for r in app_table()}
    swapped = RouteTable.build(
        [
            dataclasses.replace(routes["TellStory"], grpc_method="TellJoke"),
            dataclasses.replace(routes["TellJoke"], grpc_method="TellStory"),
            *(r for name, r in routes.items() if name not in {"TellJoke", "TellStory"}),
        ]
    )
    with pytest.raises(ValueError, match="disagree on streaming"):
        build_method_handlers(swapped, SERVICE)


async def test_every_rpc_in_the_descriptor_answers_an_empty_request() -> None:
    """Calls each method by its path from the descriptor: none may be UNIMPLEMENTED."""
    cfg = GrpcConfig(host="127.0.0.1", port=0)
    async with (
        create_grpc_server(app_table(), service=SERVICE, readiness=Readiness(), cfg=cfg) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        for method in SERVICE.methods:
            request = message_factory.GetMessageClass(method.input_type)()
            response = message_factory.GetMessageClass(method.output_type)
            path = f"/{SERVICE.full_name}/{method.name}"
            kind = channel.unary_stream if method.server_streaming else channel.unary_unary
            call = kind(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response.FromString,
            )(request, timeout=10)
            if method.server_streaming:
                replies = [r async for r in call]
                assert replies, method.name
            else:
                assert await call is not None, method.name
            assert await call.code() == grpc.StatusCode.OK, method.name
