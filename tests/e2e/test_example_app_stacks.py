# SPDX-License-Identifier: Apache-2.0
"""An app of its own (tests/example_app) keeps the kit's contract on every stack.

The app is written against the public API only and started as a real process
(``python -m tests.example_app.app``), with its policies set the way an operator sets
them: API keys, a tight rate limit, the cache and the breaker through environment
variables; framework, server, ports, gRPC port and log level through flags. Each stack
gets one process and one test that walks through the contract over REST + SSE and gRPC:
starting a server costs far more than the checks, and one test per stack keeps xdist
from starting the same stack on several workers.

Every check uses its own API key: limits count per key, so a tight limit on one check
cannot turn another check's requests into 429s, whatever the order.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.example_app.generated import example_pb2 as pb
from tests.example_app.generated import example_pb2_grpc as pb_grpc
from tests.fakes.provider import FakeProvider, Fault, Reply
from tests.support.server import ServerProcess, free_port, run_server

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 3  # requests per minute and key: RATE_LIMIT_DEFAULT below
THRESHOLD = 3  # consecutive upstream failures that open the breaker: CB_FAILURE_THRESHOLD

# One key per check (name -> key); the name is the principal the flows see.
KEYS = {
    name: f"{name}-key-0123456789abcdef"
    for name in ("schema", "stream", "cache", "limit", "grpc", "failing", "refused")
}

# (framework, server): every framework on uvicorn, and the other two servers once.
STACKS = [
    ("fastapi", "uvicorn"),
    ("litestar", "uvicorn"),
    ("quart", "uvicorn"),
    ("fastapi", "granian"),
    ("fastapi", "hypercorn"),
]

TEXT = "The lighthouse keeper kept a log of every ship that passed the rocks at night."
# The upstream model's answer to every summary request (the fake is the true boundary:
# the breaker needs a provider that can fail on cue).
SUMMARY = Reply(text='{"summary": "A keeper logged the ships passing at night.", "word_count": 8}')


@contextlib.contextmanager
def run_example_app(
    tmp_path: Path, framework: str, server: str, fake: FakeProvider
) -> Iterator[ServerProcess]:
    """The example app on ``framework``/``server`` with REST and gRPC on free ports,
    calling ``fake`` as its OpenAI-compatible provider."""
    grpc_port = free_port()
    env = {
        "API_KEYS": ",".join(f"{name}:{key}" for name, key in KEYS.items()),
        "RATE_LIMIT_DEFAULT": f"{LIMIT}/minute",
        "CACHE_ENABLED": "true",
        "CB_ENABLED": "true",
        "CB_FAILURE_THRESHOLD": str(THRESHOLD),
        "CB_RECOVERY_TIMEOUT": "300",  # stays open for the rest of the test
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "MODEL": "openai/gpt-4o-mini",
        "LLM_MAX_RETRIES": "0",  # one request, one upstream call: the fake counts them
        # The app is a module of this repository's tests package, run from elsewhere.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    args = [
        *("--grpc-port", str(grpc_port), "--framework", framework, "--server", server),
        # debug: the cache logs each flow run that fills it (the signal of a miss).
        *("--log-level", "debug", "--log-format", "json"),
    ]
    with run_server(
        tmp_path,
        app=("-m", "tests.example_app.app"),
        args=args,
        env=env,
        probe="/ready",
        extra={"grpc_port": grpc_port},
    ) as process:
        yield process


def key(name: str) -> dict[str, str]:
    return {"x-api-key": KEYS[name]}


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body)


def check_a_request_without_a_key_is_refused(client: httpx.Client) -> None:
    refused = client.post("/shout", json={"text": "hi"})
    problem = assert_problem(refused, 401)
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert problem["instance"] == "/shout"


def check_a_keyed_request_answers_the_schema_and_bad_input_is_422(client: httpx.Client) -> None:
    ok = client.post("/shout", json={"text": "ahoy"}, headers=key("schema"))
    invalid = client.post("/shout", json={"text": ""}, headers=key("schema"))
    assert ok.status_code == 200, ok.text
    # The principal is the key's name, as the flow reads it from the context.
    assert ok.json() == {"text": "AHOY", "caller": "schema"}
    problem = assert_problem(invalid, 422)
    assert problem["errors"] == [
        {"field": "text", "message": "String should have at least 1 character",
         "type": "string_too_short"}
    ]  # fmt: skip


def check_the_stream_sends_chunks_then_a_final_frame(client: httpx.Client) -> None:
    with client.stream("POST", "/count/stream", json={"to": 4}, headers=key("stream")) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        frames = [line for line in resp.iter_lines() if line]
    assert frames == [
        'data: {"chunk":"1"}',
        'data: {"chunk":"2"}',
        'data: {"chunk":"3"}',
        'data: {"chunk":"4"}',
        'data: {"done":true,"count":"1 2 3 4"}',
    ]


def check_the_second_identical_summary_is_a_cache_hit(
    client: httpx.Client, server: ServerProcess, fake: FakeProvider
) -> None:
    body = {"text": TEXT, "max_words": 12}
    first = client.post("/summarize", json=body, headers=key("cache"))
    second = client.post("/summarize", json=body, headers=key("cache"))
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == {"summary": "A keeper logged the ships passing at night.",
                            "word_count": 8}  # fmt: skip
    assert second.json() == first.json()
    assert fake.calls("generate") == 1  # the second answer came without a model call
    # The Dotprompt file reached the model: the prompt is the app's, not the kit's.
    assert "faithfully" in str(fake.requests[-1].body)
    # A flow run that fills the cache logs ``cache_fill`` with its request id: the first
    # request ran the flow, the second was answered from the cache without a run.
    deadline = time.monotonic() + 5
    while True:
        fills = [e["request_id"] for e in server.log_events() if e.get("event") == "cache_fill"]
        if fills or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert fills == [first.headers["x-request-id"]], server.log_text()[-3000:]


def check_the_rate_limit_answers_429_with_retry_after(client: httpx.Client) -> None:
    answers = [
        client.post("/shout", json={"text": "a"}, headers=key("limit")) for _ in range(LIMIT)
    ]
    over = client.post("/shout", json={"text": "a"}, headers=key("limit"))
    assert [r.status_code for r in answers] == [200] * LIMIT
    assert_problem(over, 429)
    assert 0 < int(over.headers["retry-after"]) <= 60


def check_upstream_failures_open_the_breaker(client: httpx.Client, fake: FakeProvider) -> None:
    before = fake.calls("generate")
    fake.script(*[Fault.status(503) for _ in range(THRESHOLD)])
    # Different texts: each is a cache miss that reaches the provider.
    failed = [
        client.post("/summarize", json={"text": f"text {i}"}, headers=key("failing"))
        for i in range(THRESHOLD)
    ]
    refused = client.post("/summarize", json={"text": "one more"}, headers=key("refused"))
    assert [r.status_code for r in failed] == [502] * THRESHOLD, [r.text for r in failed]
    assert_problem(refused, 503)
    assert int(refused.headers["retry-after"]) > 0
    assert fake.calls("generate") == before + THRESHOLD  # open: no call went upstream


def check_grpc_needs_the_key_and_streams_chunks(grpc_port: int) -> None:
    metadata = tuple(key("grpc").items())
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.ExampleServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Shout(pb.ShoutRequest(text="hi"), timeout=10)
        shout = stub.Shout(pb.ShoutRequest(text="hi"), metadata=metadata, timeout=10)
        chunks = [c.text for c in stub.Count(pb.CountRequest(to=3), metadata=metadata, timeout=10)]
        with pytest.raises(grpc.RpcError) as invalid:
            list(stub.Count(pb.CountRequest(to=99), metadata=metadata, timeout=10))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (shout.text, shout.caller) == ("HI", "grpc")
    assert chunks == ["1", "2", "3"]
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(("framework", "server"), STACKS, ids=[f"{f}-{s}" for f, s in STACKS])
def test_the_example_app_keeps_the_contract(tmp_path: Path, framework: str, server: str) -> None:
    with (
        FakeProvider(default=SUMMARY) as fake,
        run_example_app(tmp_path, framework, server, fake) as process,
        process.client() as client,
    ):
        check_a_request_without_a_key_is_refused(client)
        check_a_keyed_request_answers_the_schema_and_bad_input_is_422(client)
        check_the_stream_sends_chunks_then_a_final_frame(client)
        check_the_second_identical_summary_is_a_cache_hit(client, process, fake)
        check_the_rate_limit_answers_429_with_retry_after(client)
        started = process.wait_for_log("grpc_server_started")
        assert started["port"] == process.extra["grpc_port"]  # the --grpc-port flag
        check_grpc_needs_the_key_and_streams_chunks(process.extra["grpc_port"])
        # Last: an open breaker refuses every model call from here on.
        check_upstream_failures_open_the_breaker(client, fake)
        events = process.log_events()
    # Refusals and upstream failures are answers, not faults: nothing is logged as an
    # error (a bug in a flow or in the kit would be, with its traceback).
    errors = [e for e in events if e.get("level") in ("error", "critical")]
    assert not errors, errors
