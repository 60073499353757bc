# SPDX-License-Identifier: Apache-2.0
"""gRPC-Web on the REST port, end to end: a real gRPC-Web client against the real app.

The calls go through ``sonora``'s client (binary mode, ``application/grpc-web+proto``).
It has no text mode, so text-mode calls frame their request with sonora's own protocol
functions and are sent with httpx; the response is decoded with them too. Nothing here
frames a message by hand except the bad-input cases, whose point is a broken frame.

The round trips run on every framework-server stack, on the zero-configuration server
each stack already shares (gRPC-Web is on by default there, native gRPC is off); the
policies — keys, rate limit, CORS, limits, deadlines — are the kit's, below the
framework, so they run on one configured server.
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import grpc
import httpx
import pytest
from sonora import protocol
from sonora.client import insecure_web_channel

from endpoints_hello.generated import genkit_sample_pb2 as pb
from tests.support.grpc_web import SERVICE, WebStub
from tests.support.metrics import REQUEST_COUNT, scrape, total
from tests.support.server import ServerProcess, run_server

PREFIX = f"/{SERVICE.full_name}/"
BINARY = "application/grpc-web+proto"
TEXT = "application/grpc-web-text+proto"
KEYS = {name: f"{name}-key-0123456789abcdef" for name in ("web", "shared", "leave")}
ORIGIN = "https://app.example.com"
POLICY_ENV = {
    "API_KEYS": ",".join(f"{name}:{key}" for name, key in KEYS.items()),
    "RATE_LIMIT_DEFAULT": "4/minute",
    "CORS_ALLOWED_ORIGINS": ORIGIN,
    "MAX_BODY_SIZE": "4096",
    "OFFLINE_CHUNK_DELAY": "300",
}


def text_call(
    server: ServerProcess, method: str, message: bytes, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, list[bytes], dict[str, str]]:
    """A text-mode call: the messages and the status (trailers frame, else headers)."""
    body = protocol.b64_wrap_message(False, False, message)
    with server.client() as c:
        r = c.post(PREFIX + method, content=body, headers={"content-type": TEXT, **(headers or {})})
    return r, *decode(r, text=True)


def decode(r: httpx.Response, *, text: bool) -> tuple[list[bytes], dict[str, str]]:
    raw = _b64_runs(r.content) if text else r.content
    messages: list[bytes] = []
    status: dict[str, str] = {
        k: v for k, v in r.headers.items() if k in ("grpc-status", "grpc-message", "retry-after")
    }
    for is_trailers, _, payload in protocol.unwrap_message_stream(io.BytesIO(raw)):
        if is_trailers:
            status.update(protocol.unpack_trailers(payload))
        else:
            messages.append(payload)
    return messages, status


def _b64_runs(data: bytes) -> bytes:
    # The server encodes each frame on its own: decode run by run, as a browser client does.
    return b"".join(base64.b64decode(run) for run in re.split(rb"(?<==)(?=[^=])", data) if run)


def raw_call(
    server: ServerProcess, method: str, body: bytes, content_type: str = BINARY, **headers: str
) -> tuple[httpx.Response, dict[str, str]]:
    with server.client() as c:
        r = c.post(PREFIX + method, content=body, headers={"content-type": content_type, **headers})
    return r, decode(r, text=False)[1]


# Every stack: the shared zero-configuration server.


def test_unary_and_streaming_round_trips_in_binary_and_text_mode(
    offline_server: ServerProcess,
) -> None:
    with insecure_web_channel(offline_server.base_url) as channel:
        stub = WebStub(channel)
        joke, call = stub.TellJoke.with_call(pb.JokeRequest(name="Tom"), timeout=10)
        chunks = [c.text for c in stub.TellJokeStream(pb.JokeRequest(name="Ann"), timeout=10)]
        with pytest.raises(grpc.RpcError) as bad:
            stub.TellJoke(pb.JokeRequest(name="x" * 201), timeout=10)
    assert "Tom" in joke.joke
    # One id for the HTTP layer (its header) and the call (its trailer).
    assert (
        dict(call.trailing_metadata())["x-request-id"]
        == dict(call.initial_metadata())["x-request-id"]
    )
    assert len(chunks) >= 2
    assert "Ann" in "".join(chunks)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in bad.value.details()

    r, messages, status = text_call(
        offline_server, "TellJokeStream", pb.JokeRequest(name="Bo").SerializeToString()
    )
    assert r.headers["content-type"] == TEXT
    assert status["grpc-status"] == "0"
    assert "Bo" in "".join(pb.JokeChunk.FromString(m).text for m in messages)
    assert len(messages) >= 2


# One configured server for the policies.


@pytest.fixture(scope="module")
def policed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("grpc-web")
    with run_server(tmp, args=["--no-grpc"], env=POLICY_ENV) as server:
        yield server


def keyed(name: str) -> list[tuple[str, str]]:
    return [("x-api-key", KEYS[name])]


def test_a_call_without_a_key_is_unauthenticated_and_health_is_exempt(
    policed: ServerProcess,
) -> None:
    with insecure_web_channel(policed.base_url) as channel:
        stub = WebStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.TellJoke(pb.JokeRequest(), timeout=10)
        assert stub.Health(pb.HealthRequest(), timeout=10).status == "ok"
        with pytest.raises(grpc.RpcError) as wrong:
            stub.TellJoke(pb.JokeRequest(), timeout=10, metadata=[("x-api-key", "nope")])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_rate_limit_is_the_rest_bucket_and_refuses_with_retry_after(
    policed: ServerProcess,
) -> None:
    """REST and gRPC-Web calls of one principal spend from one bucket (4 a minute)."""
    with policed.client() as c:
        for _ in range(2):
            assert c.post("/tell-joke", json={}, headers={"x-api-key": KEYS["shared"]}).is_success
    with insecure_web_channel(policed.base_url) as channel:
        stub = WebStub(channel)
        for _ in range(2):
            stub.TellJoke(pb.JokeRequest(), timeout=10, metadata=keyed("shared"))
        with pytest.raises(grpc.RpcError) as limited:
            stub.TellJoke(pb.JokeRequest(), timeout=10, metadata=keyed("shared"))
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    body = protocol.wrap_message(False, False, pb.JokeRequest().SerializeToString())
    r, status = raw_call(policed, "TellJoke", body, **{"x-api-key": KEYS["shared"]})
    assert r.status_code == 200
    assert status["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    assert int(status["retry-after"]) > 0


def test_a_passed_grpc_timeout_ends_a_stream_with_deadline_exceeded(
    policed: ServerProcess,
) -> None:
    """Story chunks come every 300 ms here: a 500 ms deadline ends the stream midway."""
    with insecure_web_channel(policed.base_url) as channel:
        stub = WebStub(channel)
        stream = stub.TellStory(pb.StoryRequest(), timeout=0.5, metadata=keyed("web"))
        with pytest.raises(grpc.RpcError) as late:
            list(stream)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    events = [e for e in policed.log_events() if e.get("method") == PREFIX + "TellStory"]
    assert events[-1]["code"] == "DEADLINE_EXCEEDED"


def test_text_mode_carries_auth_and_the_error_status(policed: ServerProcess) -> None:
    request = pb.JokeRequest(name="x" * 201).SerializeToString()
    r, messages, status = text_call(policed, "TellJoke", request, {"x-api-key": KEYS["web"]})
    assert r.status_code == 200
    assert messages == []
    assert status["grpc-status"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])
    assert "name" in unquote(status["grpc-message"])


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"\x00\x00\x00\x00\x09abc", BINARY, grpc.StatusCode.INTERNAL),  # cut-short message
        (b"\x00\x00", BINARY, grpc.StatusCode.INTERNAL),  # cut-short frame header
        (b"", BINARY, grpc.StatusCode.INTERNAL),  # no message
        (b"\x01\x00\x00\x00\x02\x0a\x00", BINARY, grpc.StatusCode.INTERNAL),  # compressed flag
        (b"not base64!", TEXT, grpc.StatusCode.INTERNAL),
        (b"\x00\x00\x00\x00\x03\xff\xff\xff", BINARY, grpc.StatusCode.INVALID_ARGUMENT),
        (b"\x00\x00\x00\x20\x00" + b"\x0a" * 8192, BINARY, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
    ids=["truncated", "short-header", "empty", "compressed", "bad-base64", "bad-proto", "big"],
)
def test_bad_input_gets_a_grpc_status_never_a_500(
    policed: ServerProcess, body: bytes, content_type: str, code: grpc.StatusCode
) -> None:
    r, status = raw_call(policed, "TellJoke", body, content_type, **{"x-api-key": KEYS["web"]})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/grpc-web")
    assert status["grpc-status"] == str(code.value[0]), status
    assert r.headers["x-request-id"]
    assert "traceback" not in r.text.lower()


def test_a_compressed_message_with_an_encoding_is_unimplemented(policed: ServerProcess) -> None:
    body = protocol.wrap_message(False, True, b"\x0a\x00")
    _, status = raw_call(policed, "TellJoke", body, **{"grpc-encoding": "gzip"})
    assert status["grpc-status"] == str(grpc.StatusCode.UNIMPLEMENTED.value[0])


def test_another_codec_is_415_and_an_unknown_method_unimplemented(policed: ServerProcess) -> None:
    body = protocol.wrap_message(False, False, b"")
    r, status = raw_call(policed, "TellJoke", b"{}", "application/grpc-web+json")
    assert r.status_code == 415
    assert status["grpc-status"] == str(grpc.StatusCode.INTERNAL.value[0])
    r, status = raw_call(policed, "NoSuchMethod", body)
    assert status["grpc-status"] == str(grpc.StatusCode.UNIMPLEMENTED.value[0])


def test_cors_preflight_allows_the_grpc_web_headers_and_responses_expose_the_status(
    policed: ServerProcess,
) -> None:
    requested = "content-type,x-grpc-web,x-user-agent,grpc-timeout,x-api-key"
    with policed.client() as c:
        pre = c.options(
            PREFIX + "TellJoke",
            headers={
                "origin": ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": requested,
            },
        )
    assert pre.status_code == 204, pre.text
    assert pre.headers["access-control-allow-origin"] == ORIGIN
    assert set(pre.headers["access-control-allow-headers"].split(", ")) == set(requested.split(","))
    body = protocol.wrap_message(False, False, pb.JokeRequest().SerializeToString())
    r, status = raw_call(policed, "TellJoke", body, origin=ORIGIN)  # no key: refused
    exposed = r.headers["access-control-expose-headers"].split(", ")
    assert {"grpc-status", "grpc-message", "x-request-id"} <= set(exposed)
    assert status["grpc-status"] == str(grpc.StatusCode.UNAUTHENTICATED.value[0])


def test_calls_count_in_the_grpc_series_and_the_http_series_names_the_method(
    policed: ServerProcess,
) -> None:
    """One series for native and gRPC-Web calls, so a dashboard sees both; the request
    itself is also an HTTP request, counted under the method's path as its route."""
    with insecure_web_channel(policed.base_url) as channel:
        WebStub(channel).Health(pb.HealthRequest(), timeout=10)
    families = scrape(policed.base_url)
    rpc = {"rpc_system": "grpc", "rpc_service": SERVICE.full_name, "rpc_method": "Health"}
    assert total(families, "rpc_server_duration_seconds_count", **rpc) >= 1
    assert total(families, REQUEST_COUNT, http_route=PREFIX + "Health") >= 1


def test_a_client_leaving_a_stream_cancels_the_call(policed: ServerProcess) -> None:
    """The flow (and its model call) stops when the browser goes away, as on native gRPC."""
    body = protocol.wrap_message(False, False, pb.StoryRequest().SerializeToString())
    headers = {"content-type": BINARY, "x-api-key": KEYS["leave"]}
    with (
        policed.client() as c,
        c.stream("POST", PREFIX + "TellStory", content=body, headers=headers) as r,
    ):
        first = next(r.iter_raw())  # the first chunk arrived: the flow is running
        assert first
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ended = [
            e
            for e in policed.log_events()
            if e.get("method") == PREFIX + "TellStory" and e.get("principal") == "leave"
        ]
        if ended:
            break
        time.sleep(0.05)
    assert ended, policed.log_text()
    assert ended[-1]["code"] == "CANCELLED"
