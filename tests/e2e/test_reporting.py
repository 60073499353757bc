# SPDX-License-Identifier: Apache-2.0
"""What the service reports, end to end: crash reports to Sentry and the audit log.

One real server process (``tests/support/failing_app.py``, whose Shout fails on cue)
configured the way an operator would: ``SENTRY_DSN`` pointing at a fake Sentry ingest
on loopback, ``AUDIT_LOG`` a file, API keys, a tight rate limit, the cache, a short
request timeout and one request in flight at most. Both tests share it and only look at
what their own requests (their request ids) produced, so their order does not matter.

Every check uses its own API key: limits count per key, so one check's requests never
turn another's into 429s. Secrets are seeded where they could leak — the prompt text,
the Authorization header, the provider key's settings — and searched for in every byte
that reached the ingest and the audit file.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from tests.example_app.generated import example_pb2 as pb
from tests.example_app.generated import example_pb2_grpc as pb_grpc
from tests.support.sentry_ingest import SentryIngest, tag
from tests.support.server import ServerProcess, run_server

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 2  # requests per minute and key: RATE_LIMIT_DEFAULT below
REQUEST_TIMEOUT = 2  # seconds: the slow Shout's 504
CHECKS = (
    "boom", "gboom", "leak", "quiet", "limit", "glimit", "slow",  # Sentry
    "alice", "cache", "carol", "grpc",  # audit log
)  # fmt: skip
KEYS = {name: f"{name}-key-{i:02d}-0123456789abcdef" for i, name in enumerate(CHECKS)}
PROVIDER_KEY = "provider-secret-value-0123456789"  # no recognisable shape: masked by value
PROMPT_SECRET = "sk-live-0123456789abcdefghijklmnop"  # noqa: S105 - masked by its shape
SECRETS = (*KEYS.values(), PROVIDER_KEY, PROMPT_SECRET)
BOOM = f"boom {PROMPT_SECRET} {PROVIDER_KEY} {KEYS['alice']}"  # what a bug's message echoes
SHOUT = "/example.v1.ExampleService/Shout"
SUMMARIZE = "/example.v1.ExampleService/Summarize"


@pytest.fixture(scope="module")
def ingest() -> Iterator[SentryIngest]:
    with SentryIngest().running() as server:
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, ingest: SentryIngest
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("reporting")
    audit = tmp / "audit.log"
    env = {
        "SENTRY_DSN": ingest.dsn(project=1),
        "SENTRY_ENVIRONMENT": "e2e",
        "AUDIT_LOG": str(audit),
        "API_KEYS": ",".join(f"{name}:{key}" for name, key in KEYS.items()),
        "RATE_LIMIT_DEFAULT": f"{LIMIT}/minute",
        "CACHE_ENABLED": "true",
        "REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
        "MAX_CONCURRENT_REQUESTS": "1",
        "MODEL": "offline/default",
        "OPENAI_API_KEY": PROVIDER_KEY,  # configured, unused: a secret the masker knows
        # The app is a module of this repository's tests package, run from elsewhere.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with run_server(tmp, app=("-m", "tests.support.failing_app"), env=env) as process:
        process.extra["audit"] = audit
        yield process


def rest(
    server: ServerProcess,
    path: str,
    body: Any,
    *,
    rid: str,
    key: str | None = None,
    timeout: float = 10,
) -> httpx.Response:
    headers = {"x-request-id": rid}
    if key is not None:
        headers["authorization"] = f"Bearer {KEYS[key]}"
    return httpx.post(server.base_url + path, json=body, headers=headers, timeout=timeout)


def metadata(rid: str, key: str | None = None) -> tuple[tuple[str, str], ...]:
    pairs = [("x-request-id", rid)]
    if key is not None:
        pairs.append(("x-api-key", KEYS[key]))
    return tuple(pairs)


def grpc_code(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def by_request_id(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        out.setdefault(str(tag(event, "request_id")), []).append(event)
    return out


def test_sentry_gets_one_event_per_bug_and_none_for_refusals(
    server: ServerProcess, ingest: SentryIngest
) -> None:
    quiet: dict[str, int | grpc.StatusCode] = {}
    # 422, 401, 429 over REST.
    quiet["s-422"] = rest(server, "/shout", {"text": ""}, rid="s-422", key="quiet").status_code
    quiet["s-401"] = rest(server, "/shout", {"text": "hi"}, rid="s-401").status_code
    for i in range(LIMIT + 1):
        rid = f"s-429-{i}"
        quiet[rid] = rest(server, "/shout", {"text": "hi"}, rid=rid, key="limit").status_code
    # 504 for the slow Shout, and a 503 for a request arriving while it holds the only slot.
    slow: dict[str, httpx.Response] = {}
    waiter = threading.Thread(
        target=lambda: slow.setdefault(
            "r", rest(server, "/shout", {"text": "slow"}, rid="s-504", key="slow", timeout=30)
        )
    )
    waiter.start()
    server.wait_for_log("slow_shout_started")
    quiet["s-503"] = rest(server, "/shout", {"text": "hi"}, rid="s-503").status_code
    waiter.join(30)
    quiet["s-504"] = slow["r"].status_code
    # INVALID_ARGUMENT and RESOURCE_EXHAUSTED over gRPC.
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.ExampleServiceStub(channel)
        quiet["g-invalid"] = grpc_code(
            lambda: stub.Shout(
                pb.ShoutRequest(text="x" * 201), metadata=metadata("g-invalid", "quiet"), timeout=10
            )
        )
        for rid in (f"g-limit-{i}" for i in range(LIMIT + 1)):
            quiet[rid] = grpc_code(
                functools.partial(
                    stub.Shout,
                    pb.ShoutRequest(text="hi"),
                    metadata=metadata(rid, "glimit"),
                    timeout=10,
                )
            )
        # The bugs: one REST 500 and one gRPC INTERNAL.
        rest_500 = rest(server, "/shout", {"text": BOOM}, rid="s-boom", key="boom")
        internal = grpc_code(
            lambda: stub.Shout(
                pb.ShoutRequest(text=BOOM), metadata=metadata("g-boom", "gboom"), timeout=10
            )
        )
    assert quiet == {
        "s-422": 422,
        "s-401": 401,
        "s-429-0": 200,
        "s-429-1": 200,
        "s-429-2": 429,
        "s-503": 503,
        "s-504": 504,
        "g-invalid": grpc.StatusCode.INVALID_ARGUMENT,
        "g-limit-0": grpc.StatusCode.OK,
        "g-limit-1": grpc.StatusCode.OK,
        "g-limit-2": grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    assert rest_500.status_code == 500
    assert rest_500.json()["detail"] == "The server could not complete the request."
    assert internal == grpc.StatusCode.INTERNAL
    # The SDK sends in order from one queue: once a later bug's event is in, every event
    # the requests above could have caused is in too.
    marker = rest(server, "/shout", {"text": "boom marker"}, rid="s-marker", key="boom")
    assert marker.status_code == 500
    events = ingest.wait_for(lambda evs: "s-marker" in by_request_id(evs))
    reported = by_request_id(events)
    assert not set(quiet) & set(reported), reported.keys()
    (rest_event,) = reported["s-boom"]
    (grpc_event,) = reported["g-boom"]
    for event in (rest_event, grpc_event):
        assert tag(event, "flow") == "shout"
        assert event["environment"] == "e2e"
        assert event["release"].startswith("genkit-endpoints@")
        (exc,) = event["exception"]["values"]
        assert exc["type"] == "KeyError"
        assert exc["value"].startswith("'boom ")
        assert "***" in exc["value"]  # the message arrived, its secrets masked
        assert exc["stacktrace"]["frames"][-1]["function"] == "shout"
        assert all("vars" not in frame for frame in exc["stacktrace"]["frames"])
        assert "request" not in event
        assert "user" not in event
    assert {r.project for r in ingest.received} == {"1"}
    assert all(r.path == "/api/1/envelope/" for r in ingest.received)


def test_nothing_secret_reaches_sentry(server: ServerProcess, ingest: SentryIngest) -> None:
    """Searched after a bug whose message echoes every kind of secret (its own request
    authenticated with a bearer key), in every byte the ingest received."""
    response = rest(server, "/shout", {"text": BOOM}, rid="s-leak", key="leak")
    assert response.status_code == 500
    ingest.wait_for(lambda evs: "s-leak" in by_request_id(evs))
    sent = ingest.wire_bytes()
    assert b"s-leak" in sent
    for secret in SECRETS:
        assert secret.encode() not in sent, secret
    assert b"Bearer" not in sent
    assert b"authorization" not in sent.lower()


def audit_lines(server: ServerProcess, rids: set[str], timeout: float = 10) -> list[dict[str, Any]]:
    """The audit lines of ``rids`` once each has one (written after the response is sent)."""
    path: Path = server.extra["audit"]
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in path.read_bytes().splitlines()]
        mine = [line for line in lines if line["request_id"] in rids]
        if {line["request_id"] for line in mine} == rids or time.monotonic() > deadline:
            return mine
        time.sleep(0.02)


def test_the_audit_log_has_one_line_per_request_and_rpc(server: ServerProcess) -> None:
    text = f"The lighthouse keeper logged every ship that passed. {PROMPT_SECRET}"
    summary = {"text": text, "max_words": 10}
    statuses = {
        "a-flow": rest(server, "/shout?verbose=yes", {"text": "hi"}, rid="a-flow", key="alice"),
        "a-miss": rest(server, "/summarize", summary, rid="a-miss", key="cache"),
        "a-hit": rest(server, "/summarize", summary, rid="a-hit", key="cache"),
        "a-ok": rest(server, "/shout", {"text": "hi"}, rid="a-ok", key="carol"),
        "a-ok2": rest(server, "/shout", {"text": "hi"}, rid="a-ok2", key="carol"),
        "a-429": rest(server, "/shout", {"text": "hi"}, rid="a-429", key="carol"),
        "a-401": rest(server, "/shout", {"text": "hi"}, rid="a-401"),
    }
    assert {rid: r.status_code for rid, r in statuses.items()} == {
        "a-flow": 200,
        "a-miss": 200,
        "a-hit": 200,
        "a-ok": 200,
        "a-ok2": 200,
        "a-429": 429,
        "a-401": 401,
    }
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.ExampleServiceStub(channel)
        reply = stub.Summarize(
            pb.SummarizeRequest(text="Owls hunt at night over the quiet fields.", max_words=8),
            metadata=metadata("a-grpc", "grpc"),
            timeout=10,
        )
    assert reply.summary
    rids = {*statuses, "a-grpc"}
    lines = audit_lines(server, rids)
    assert sorted(line["request_id"] for line in lines) == sorted(rids)  # exactly one each
    by_id = {line["request_id"]: line for line in lines}
    for line in lines:
        assert line["event"] == "audit"
        assert line["client_ip"] == "127.0.0.1"
        assert isinstance(line["duration_ms"], float)
        assert isinstance(line["status"], int)
    flow = by_id["a-flow"]
    assert (flow["transport"], flow["method"], flow["route"], flow["status"]) == (
        "http",
        "POST",
        "/shout",  # the template: no query string
        200,
    )
    assert (flow["principal"], flow["flow"], flow["rate_limit"], flow["cache"]) == (
        "alice",
        "shout",
        "allowed",
        None,  # shout is never cached
    )
    assert flow["bytes_in"] > 0
    assert flow["bytes_out"] == len(statuses["a-flow"].content)
    miss, hit = by_id["a-miss"], by_id["a-hit"]
    assert (miss["flow"], miss["cache"], miss["model"]) == ("summarize", "miss", "offline/default")
    assert miss["input_tokens"] > 0
    assert miss["output_tokens"] > 0
    assert (hit["cache"], hit["model"], hit["input_tokens"]) == ("hit", None, None)
    limited = by_id["a-429"]
    assert (limited["status"], limited["principal"], limited["rate_limit"], limited["flow"]) == (
        429,
        "carol",
        "limited",
        None,
    )
    assert by_id["a-ok"]["rate_limit"] == by_id["a-ok2"]["rate_limit"] == "allowed"
    refused = by_id["a-401"]
    assert (refused["status"], refused["principal"], refused["rate_limit"]) == (401, None, None)
    rpc = by_id["a-grpc"]
    assert (rpc["transport"], rpc["route"], rpc["status"], rpc["grpc_code"]) == (
        "grpc",
        SUMMARIZE,
        0,
        "OK",
    )
    assert (rpc["principal"], rpc["flow"], rpc["cache"], rpc["model"]) == (
        "grpc",
        "summarize",
        "miss",
        "offline/default",
    )
    assert rpc["output_tokens"] > 0
    raw = server.extra["audit"].read_bytes()
    for secret in (*SECRETS, "lighthouse", "Owls", "verbose", "Bearer", "max_words"):
        assert secret.encode() not in raw, secret
