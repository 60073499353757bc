# SPDX-License-Identifier: Apache-2.0
"""Real provider plugins (Gemini, OpenAI-compatible) against the fake provider server.

The app runs as its own process; the fake runs in the test process and both talk over
loopback. Each test scripts the fake, then asserts what the client of the app sees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.provider import FakeProvider, Fault, Reply, ToolCall
from tests.support.server import ServerProcess, run_server

LLM_TIMEOUT_MS = 1500
CHARACTER = {
    "name": "Aria",
    "backStory": "Raised by owls.",
    "abilities": ["flight"],
    "skills": {"strength": 10, "charisma": 90, "endurance": 50},
}
TRANSLATION = {
    "original_text": "hello",
    "translated_text": "bonjour",
    "target_language": "French",
    "confidence": "high",
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def _env(fake: FakeProvider, wire: str) -> dict[str, str]:
    common = {
        "LLM_TIMEOUT": str(LLM_TIMEOUT_MS),
        "LLM_FIRST_CHUNK_TIMEOUT": "800",
        "LLM_MAX_RETRIES": "2",
        "LLM_RETRY_BASE_DELAY": "50",
        "LLM_RETRY_MAX_DELAY": "3000",
    }
    if wire == "gemini":
        return {**common, "GEMINI_API_KEY": "test-key", "GEMINI_BASE_URL": fake.gemini_base_url}
    return {
        **common,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "MODEL": "openai/gpt-4o-mini",
    }


PROVIDER_STACKS = [
    ("gemini", "fastapi"),
    ("openai", "fastapi"),
    ("gemini", "litestar"),
    ("openai", "quart"),
]


@pytest.fixture(
    scope="module", params=PROVIDER_STACKS, ids=[f"{w}-{fw}" for w, fw in PROVIDER_STACKS]
)
def provider_app(
    request: pytest.FixtureRequest, fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServerProcess]]:
    wire, framework = request.param
    args = ["--framework", framework, "--no-grpc"]
    with run_server(tmp_path_factory.mktemp(wire), args=args, env=_env(fake, wire)) as server:
        # Ready means the plugin warmed up (the Gemini model listing succeeded).
        deadline = time.monotonic() + 15
        while httpx.get(server.base_url + "/ready").status_code != 200:
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.1)
        yield wire, server


@pytest.fixture
def app(provider_app: tuple[str, ServerProcess], fake: FakeProvider) -> ServerProcess:
    fake.reset()
    return provider_app[1]


def generate_calls(fake: FakeProvider) -> int:
    return fake.calls("generate")


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) per frame; the name is "message" when there is no event line."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = "message", None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
        assert data is not None, block
        out.append((name, data))
    return out


def test_the_configured_provider_is_used_and_logged(
    provider_app: tuple[str, ServerProcess],
) -> None:
    wire, server = provider_app
    event = server.wait_for_log("using_model")
    assert event["provider"] == ("googleai" if wire == "gemini" else "openai")
    if wire == "gemini":  # GEMINI_API_KEY alone selects the default Gemini model
        assert event["model"] == "googleai/gemini-2.5-flash"


def test_unary_text(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(Reply(text="Why did the cat sit on the computer? To keep an eye on the mouse."))
    with app.client() as c:
        r = c.post("/tell-joke", json={"name": "Tom"})
    assert r.status_code == 200
    assert r.json()["joke"] == "Why did the cat sit on the computer? To keep an eye on the mouse."
    (req,) = [q for q in fake.requests if q.kind == "generate"]
    assert "Tom" in json.dumps(req.body)


def test_system_prompt_and_template_like_input_reach_the_provider_verbatim(
    app: ServerProcess, fake: FakeProvider
) -> None:
    fake.script(Reply(text="Arr."))
    with app.client() as c:
        r = c.post("/chat", json={"question": "Explain {{question}} and {{#if x}}"})
    assert r.status_code == 200
    (req,) = [q for q in fake.requests if q.kind == "generate"]
    sent = json.dumps(req.body)
    assert "Explain {{question}} and {{#if x}}" in sent
    assert "pirate captain" in sent


def test_streaming_text(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(Reply(text="one two three four five"))
    with app.client() as c:
        r = c.post("/tell-joke/stream", json={})
    events = sse_events(r.content)
    assert all(name == "message" for name, _ in events)
    *chunks, (_, done) = events
    assert len(chunks) >= 2
    assert "".join(d["chunk"] for _, d in chunks) == "one two three four five"
    assert done == {"done": True, "joke": "one two three four five"}


def test_structured_output(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(Reply(text=json.dumps(CHARACTER)))
    with app.client() as c:
        r = c.post("/generate-character", json={"name": "Aria"})
    assert r.status_code == 200
    assert r.json() == CHARACTER
    (req,) = [q for q in fake.requests if q.kind == "generate"]
    assert req.json_mode


def test_tool_call_round_trip(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(
        Reply(tool_call=ToolCall("get_current_time", {"timezone": "UTC"})),
        Reply(text=json.dumps(TRANSLATION)),
    )
    with app.client() as c:
        r = c.post("/translate", json={"text": "hello"})
    assert r.status_code == 200, r.text
    assert r.json()["translated_text"] == "bonjour"
    assert generate_calls(fake) == 2
    second = [q for q in fake.requests if q.kind == "generate"][1]
    assert "get_current_time" in json.dumps(second.body)


def test_provider_500_is_502(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(Fault.status(500), Fault.status(500), Fault.status(500))
    with app.client() as c:
        r = c.post("/tell-joke", json={})
    assert r.status_code == 502
    assert r.headers["content-type"] == "application/problem+json"
    assert "internal error" not in r.text.lower()


def test_hang_is_504_within_llm_timeout(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(Fault.hang(30))
    start = time.monotonic()
    with app.client() as c:
        r = c.post("/tell-joke", json={})
    elapsed = time.monotonic() - start
    assert r.status_code == 504
    assert r.json()["status"] == 504
    assert elapsed <= LLM_TIMEOUT_MS / 1000 * 1.2, elapsed
    assert generate_calls(fake) == 1  # a timed-out call is not retried past the deadline


def test_rate_limit_with_retry_after_is_retried_then_200(
    app: ServerProcess, fake: FakeProvider
) -> None:
    fake.script(Fault.rate_limited(retry_after=1), Reply(text="patience pays"))
    start = time.monotonic()
    with app.client() as c:
        r = c.post("/tell-joke", json={})
    assert r.status_code == 200
    assert r.json()["joke"] == "patience pays"
    assert generate_calls(fake) == 2
    assert time.monotonic() - start >= 0.95  # Retry-After honoured


def test_retries_are_bounded(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(*[Fault.status(503) for _ in range(10)])
    with app.client() as c:
        r = c.post("/tell-joke", json={})
    assert r.status_code == 502
    assert generate_calls(fake) == 3  # 1 + LLM_MAX_RETRIES


def test_invalid_json_output_is_502(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(Reply(text="not json {"))
    with app.client() as c:
        r = c.post("/generate-character", json={})
    assert r.status_code == 502
    assert r.json()["type"].endswith("invalid-model-output")


def test_schema_invalid_output_is_502(app: ServerProcess, fake: FakeProvider) -> None:
    bad = {**CHARACTER, "skills": {"strength": 500, "charisma": 1, "endurance": 1}}
    fake.script(Reply(text=json.dumps(bad)))
    with app.client() as c:
        r = c.post("/generate-character", json={})
    assert r.status_code == 502


def test_mid_stream_drop_ends_with_an_error_frame(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(Fault.drop_after(2, reply=Reply(text="alpha beta gamma delta epsilon")))
    with app.client() as c:
        r = c.post("/tell-joke/stream", json={})
    assert r.status_code == 200
    events = sse_events(r.content)  # the body ended cleanly: httpx read it to the end
    *chunks, (name, problem) = events
    assert [d["chunk"] for _, d in chunks] == ["alpha ", "beta "] or len(chunks) == 2
    assert name == "error"
    assert problem["status"] == 502
    assert problem["request_id"] == r.headers["x-request-id"]
    assert r.content.endswith(b"\n\n")
    assert generate_calls(fake) == 1  # never retried after the stream started


def test_slow_first_chunk_ends_the_stream_with_504(app: ServerProcess, fake: FakeProvider) -> None:
    fake.script(Fault.slow_first_chunk(5, reply=Reply(text="too late")))
    start = time.monotonic()
    with app.client() as c:
        r = c.post("/tell-story/stream", json={})
    events = sse_events(r.content)
    assert events[-1][0] == "error"
    assert events[-1][1]["status"] == 504
    assert time.monotonic() - start < 1.5


def test_client_disconnect_aborts_the_upstream_stream(
    app: ServerProcess, fake: FakeProvider
) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    fake.script(Reply(text=words, chunk_delay=0.1))
    with app.client() as c, c.stream("POST", "/tell-story/stream", json={}) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break
    fake.wait_until_blocking(lambda f: f.disconnects >= 1, within=2.0)
    assert fake.disconnects >= 1


def test_failed_first_model_listing_is_not_cached(fake: FakeProvider, tmp_path: Path) -> None:
    fake.reset()
    fake.fail_model_listing(times=2)
    with run_server(tmp_path, env=_env(fake, "gemini")) as server:
        deadline = time.monotonic() + 20
        while httpx.get(server.base_url + "/ready").status_code != 200:
            assert time.monotonic() < deadline, server.log_text()[-3000:]
            time.sleep(0.1)
        fake.script(Reply(text="recovered"))
        r = httpx.post(server.base_url + "/tell-joke", json={}, timeout=10)
    assert r.status_code == 200
    assert r.json()["joke"] == "recovered"
    assert fake.calls("list", wire="gemini") >= 3
