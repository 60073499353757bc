# SPDX-License-Identifier: Apache-2.0
"""API keys end to end: the real app process with ``API_KEYS``, REST and gRPC."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from tests.support.server import ServerProcess, run_server

KEY = "e2e-key-0123456789abcdef"
HASHED_KEY = "hashed-key-fedcba9876543210"
API_KEYS = f"e2e:{KEY},ops:sha256:{hashlib.sha256(HASHED_KEY.encode()).hexdigest()}"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with run_server(tmp_path_factory.mktemp("auth"), env={"API_KEYS": API_KEYS}) as server:
        yield server


def test_rest_without_a_key_is_401_problem_with_www_authenticate(keyed: ServerProcess) -> None:
    with keyed.client() as c:
        r = c.post("/tell-joke", json={})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"X-API-Key": HASHED_KEY}],
    ids=["x-api-key", "bearer", "hashed"],
)
def test_rest_with_a_valid_key_is_200(keyed: ServerProcess, headers: dict[str, str]) -> None:
    with keyed.client() as c:
        r = c.post("/tell-joke", json={}, headers=headers)
    assert r.status_code == 200, r.text


def test_rest_flow_sees_the_key_name_not_the_body_username(keyed: ServerProcess) -> None:
    with keyed.client() as c:
        r = c.post("/tell-joke", json={"username": "mallory"}, headers={"X-API-Key": KEY})
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "e2e"


def test_rest_wrong_key_and_key_in_url_are_401_and_never_logged(keyed: ServerProcess) -> None:
    with keyed.client() as c:
        wrong = c.post("/tell-joke", json={}, headers={"X-API-Key": "not-the-key-0123456789"})
        in_url = c.post(f"/tell-joke?api_key={KEY}", json={}, headers={"X-API-Key": KEY})
        health = c.get("/health")
        ready = c.get("/ready")
    assert wrong.status_code == 401
    assert in_url.status_code == 401
    assert "header" in in_url.json()["detail"]
    assert health.status_code == 200
    assert ready.status_code in (200, 503)  # exempt: answered without a key
    assert KEY not in keyed.log_text()
    assert HASHED_KEY not in keyed.log_text()


def test_grpc_needs_the_key_and_health_does_not(keyed: ServerProcess) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{keyed.grpc_port}") as channel:
        stub = pb_grpc.GenkitServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.TellJoke(pb.JokeRequest(), timeout=10)
        reply = stub.TellJoke(pb.JokeRequest(), metadata=(("x-api-key", KEY),), timeout=10)
        bearer = stub.TellJoke(
            pb.JokeRequest(), metadata=(("authorization", f"Bearer {HASHED_KEY}"),), timeout=10
        )
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        own_health = stub.Health(pb.HealthRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reply.joke
    assert bearer.joke
    assert health.status in (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    assert own_health.status == "ok"
    started = keyed.wait_for_log("grpc_server_started")
    assert (started["transport"], started["authentication"]) == ("plaintext", "api_key")
    assert KEY not in keyed.log_text()


def test_grpc_flow_sees_the_key_name_not_the_body_username(keyed: ServerProcess) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{keyed.grpc_port}") as channel:
        reply = pb_grpc.GenkitServiceStub(channel).TellJoke(
            pb.JokeRequest(username="mallory"), metadata=(("x-api-key", KEY),), timeout=10
        )
    assert reply.username == "e2e"
