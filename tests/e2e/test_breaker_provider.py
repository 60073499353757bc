# SPDX-License-Identifier: Apache-2.0
"""The circuit breaker in the real app process against the fake provider.

Retries are off (``LLM_MAX_RETRIES=0``) so one request is one upstream call and the
fake's request record counts exactly what the breaker let through.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from sonora import protocol
from sonora.client import insecure_web_channel

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from tests.fakes.provider import FakeProvider, Fault, Reply
from tests.support.grpc_web import WebStub
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess, run_server

THRESHOLD = 3
RECOVERY_S = 2


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def _env(fake: FakeProvider, **extra: str) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "MODEL": "openai/gpt-4o-mini",
        "LLM_TIMEOUT": "3000",
        "LLM_MAX_RETRIES": "0",
        "CB_FAILURE_THRESHOLD": str(THRESHOLD),
        "CB_RECOVERY_TIMEOUT": str(RECOVERY_S),
        **extra,
    }


def _wait_ready(server: ServerProcess) -> None:
    deadline = time.monotonic() + 15
    while httpx.get(server.base_url + "/ready").status_code != 200:
        assert time.monotonic() < deadline, server.log_text()[-3000:]
        time.sleep(0.1)


def _changes(server: ServerProcess) -> list[tuple[str, str]]:
    return [
        (e["from"], e["to"])
        for e in server.log_events()
        if e.get("event") == "breaker_state_changed"
    ]


def test_provider_503_burst_opens_the_breaker_then_a_probe_closes_it(
    fake: FakeProvider, tmp_path: Path
) -> None:
    fake.reset()
    with run_server(tmp_path, env=_env(fake)) as server:
        _wait_ready(server)
        fake.script(*[Fault.status(503) for _ in range(THRESHOLD)])
        with server.client() as c:
            failures = [c.post("/tell-joke", json={}).status_code for _ in range(THRESHOLD)]
            opened_at = time.monotonic()
            refused = [c.post("/tell-joke", json={}) for _ in range(5)]
            with (
                grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel,
                pytest.raises(grpc.RpcError) as info,
            ):
                pb_grpc.GenkitServiceStub(channel).TellJoke(pb.JokeRequest(), timeout=5)
            with (
                insecure_web_channel(server.base_url) as web,
                pytest.raises(grpc.RpcError) as web_info,
            ):
                WebStub(web).TellJoke(pb.JokeRequest(), timeout=5)
            web_refused = c.post(
                "/genkit.sample.v1.GenkitService/TellJoke",
                content=protocol.wrap_message(False, False, b""),
                headers={"content-type": "application/grpc-web+proto"},
            )
            assert fake.calls("generate") == THRESHOLD  # zero upstream calls while open
            time.sleep(max(0.0, RECOVERY_S + 0.2 - (time.monotonic() - opened_at)))
            fake.script(Reply(text="back again"))
            probe = c.post("/tell-joke", json={})
            after = c.post("/tell-joke", json={})
        changes = _changes(server)
    assert failures == [502] * THRESHOLD
    for r in refused:
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("breaker-open")
        assert 1 <= int(r.headers["retry-after"]) <= RECOVERY_S
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(info.value.trailing_metadata() or ())  # type: ignore[attr-defined]
    assert 1 <= int(trailers["retry-after"]) <= RECOVERY_S
    # gRPC-Web on the REST port: the same status, its retry-after in the headers
    # (nothing was sent before the refusal, so the status travels there).
    assert web_info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert web_refused.headers["grpc-status"] == str(grpc.StatusCode.UNAVAILABLE.value[0])
    assert 1 <= int(web_refused.headers["retry-after"]) <= RECOVERY_S
    assert probe.status_code == 200
    assert probe.json()["joke"] == "back again"
    assert after.status_code == 200
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_client_errors_never_trip_the_breaker(fake: FakeProvider, tmp_path: Path) -> None:
    fake.reset()
    with run_server(tmp_path, args=["--no-grpc"], env=_env(fake)) as server:
        _wait_ready(server)
        with server.client() as c:
            invalid = [
                c.post(
                    "/tell-joke", content=b"{not json", headers={"content-type": "application/json"}
                )
                for _ in range(THRESHOLD * 3)
            ]
            fake.script(*[Fault.status(503) for _ in range(THRESHOLD - 1)], Reply(text="fine"))
            upstream = [c.post("/tell-joke", json={}).status_code for _ in range(THRESHOLD)]
        changes = _changes(server)
    assert {r.status_code for r in invalid} == {422}
    # Had the 422s counted, the breaker would have been open before the last call.
    assert upstream == [502] * (THRESHOLD - 1) + [200]
    assert changes == []


def test_replicas_sharing_redis_open_together(
    fake: FakeProvider, tmp_path: Path, redis_server: RedisServer
) -> None:
    fake.reset()
    shared = {"CB_REDIS_URL": redis_server.url, "CB_NAMESPACE": redis_server.namespace()}
    env = _env(fake, **shared)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        run_server(tmp_path / "a", args=["--no-grpc"], env=env) as a,
        run_server(tmp_path / "b", args=["--no-grpc"], env=env) as b,
    ):
        _wait_ready(a)
        _wait_ready(b)
        fake.script(*[Fault.status(503) for _ in range(THRESHOLD)])
        with a.client() as ca, b.client() as cb:
            assert cb.post("/tell-joke", json={}).status_code == 502  # b sees failures too
            failures = [ca.post("/tell-joke", json={}).status_code for _ in range(THRESHOLD - 1)]
            time.sleep(1.0)  # > the breaker's local view lifetime (0.5 s)
            refused_by_b = cb.post("/tell-joke", json={})
            refused_by_a = ca.post("/tell-joke", json={})
    assert failures == [502] * (THRESHOLD - 1)
    assert refused_by_b.status_code == 503, refused_by_b.text
    assert refused_by_a.status_code == 503
    assert "retry-after" in refused_by_b.headers
    assert fake.calls("generate") == THRESHOLD
