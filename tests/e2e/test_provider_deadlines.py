# SPDX-License-Identifier: Apache-2.0
"""Model-call deadlines end to end against the fake provider.

What ``test_providers.py`` does not pin down already: a gRPC cancellation closes the
upstream request within 2 s, and a provider hang answers 504 at ``LLM_TIMEOUT`` ±20 %
(not early, not late). The REST disconnect case lives in ``test_providers.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from tests.fakes.provider import FakeProvider, Fault, Reply
from tests.support.server import ServerProcess, run_server

LLM_TIMEOUT_MS = 2000


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def server(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "MODEL": "openai/gpt-4o-mini",
        "LLM_TIMEOUT": str(LLM_TIMEOUT_MS),
        "LLM_MAX_RETRIES": "0",
        "CB_ENABLED": "false",  # timeouts here must not open a breaker for the next test
    }
    with run_server(tmp_path_factory.mktemp("deadlines"), env=env) as proc:
        yield proc


def test_grpc_cancellation_closes_the_upstream_stream_within_2s(
    server: ServerProcess, fake: FakeProvider
) -> None:
    fake.reset()
    fake.script(Reply(text=" ".join(f"w{i}" for i in range(60)), chunk_delay=0.1))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = pb_grpc.GenkitServiceStub(channel).TellStory(pb.StoryRequest(), timeout=20)
        first = next(call)
        call.cancel()
        cancelled_at = time.monotonic()
        fake.wait_until_blocking(lambda f: f.disconnects >= 1, within=2.0)
    assert first.text
    assert time.monotonic() - cancelled_at <= 2.0
    assert fake.calls("generate") == 1


def test_provider_hang_is_504_at_llm_timeout_within_20_percent(
    server: ServerProcess, fake: FakeProvider
) -> None:
    fake.reset()
    fake.script(Fault.hang(30))
    start = time.monotonic()
    with server.client() as c:
        r = c.post("/tell-joke", json={})
    elapsed = time.monotonic() - start
    assert r.status_code == 504
    assert r.headers["content-type"] == "application/problem+json"
    assert LLM_TIMEOUT_MS / 1000 * 0.8 <= elapsed <= LLM_TIMEOUT_MS / 1000 * 1.2, elapsed
    fake.wait_until_blocking(lambda f: f.disconnects >= 1, within=2.0)  # upstream closed too
