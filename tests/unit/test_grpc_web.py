# SPDX-License-Identifier: Apache-2.0
"""gRPC-Web in process: the wire format, the status layer and the setting that turns it off.

Round trips through a real gRPC-Web client, on real servers, are in
``tests/e2e/test_grpc_web.py``; here the pieces are driven with raw ASGI messages.
"""

from __future__ import annotations

import base64
import io
from typing import Any
from urllib.parse import unquote  # what sonora decodes grpc-message with

import pytest
from sonora import protocol

from endpoints_hello.app import APP
from endpoints_hello.generated import genkit_sample_pb2 as pb
from genkit_endpoints.core.grpc_wire import grpc_message
from genkit_endpoints.grpc.web_framing import (
    TRAILERS,
    FramingError,
    decode_text,
    frame,
    parse_timeout,
    split_frames,
    trailers_frame,
)
from genkit_endpoints.http.middleware.policy import HttpPolicy
from genkit_endpoints.http.middleware.stack import build_stack
from genkit_endpoints.http.types import ASGIApp, Receive, Scope, Send
from genkit_endpoints.serving.app import create_service
from genkit_endpoints.serving.cli import parse_settings
from tests.unit.asgi._support import ok_app
from tests.unit.asgi_helpers import call, http_scope

GRPC_WEB = [(b"content-type", b"application/grpc-web+proto")]
TELL_JOKE = "/genkit.sample.v1.GenkitService/TellJoke"


def layers(app: Any) -> list[str]:
    names = []
    for _ in range(32):  # bounded walk down the stack
        names.append(type(app).__name__)
        app = getattr(app, "app", None)
        if app is None:
            break
    return names


# The wire format, checked against sonora's encoder and decoder.


def test_frames_round_trip_with_sonoras_encoding() -> None:
    wire = protocol.wrap_message(False, False, b"hello") + frame(b"x: y\r\n", TRAILERS)
    assert split_frames(wire) == [(0, b"hello"), (TRAILERS, b"x: y\r\n")]
    assert protocol.unwrap_message(frame(b"abc")) == (False, False, b"abc")
    trailers, _, block = protocol.unwrap_message(trailers_frame([("grpc-status", "0")]))
    assert trailers
    assert protocol.unpack_trailers(block) == [("grpc-status", "0")]


def test_text_bodies_may_be_several_padded_base64_runs() -> None:
    """A sender may encode each frame on its own: the padded runs are decoded one by one."""
    one, two = frame(b"a"), frame(b"bc")
    assert decode_text(base64.b64encode(one) + base64.b64encode(two)) == one + two
    assert decode_text(protocol.b64_wrap_message(False, False, b"xyz")) == frame(b"xyz")
    assert decode_text(base64.b64encode(one)[:4] + b"\r\n" + base64.b64encode(one)[4:]) == one
    with pytest.raises(FramingError):
        decode_text(b"not base64!")


@pytest.mark.parametrize("data", [b"\x00\x00", b"\x00\x00\x00\x00\x05abc"])
def test_a_cut_short_frame_is_a_framing_error(data: bytes) -> None:
    with pytest.raises(FramingError):
        split_frames(data)


def test_grpc_message_is_percent_encoded_as_the_spec_says() -> None:
    assert grpc_message("plain text: ok") == "plain text: ok"
    assert grpc_message("100% sûr\n") == "100%25 s%C3%BBr%0A"
    assert unquote(grpc_message("100% sûr\n")) == "100% sûr\n"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1S", 1.0), ("250m", 0.25), ("2M", 120.0), ("1H", 3600.0), ("5u", 5e-6), ("7n", 7e-9)],
)
def test_grpc_timeout_values(value: str, seconds: float) -> None:
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "1", "S", "1s", "123456789S", "-1S", "1.5S"])
def test_malformed_grpc_timeouts_are_refused(value: str) -> None:
    with pytest.raises(FramingError):
        parse_timeout(value)


# The status layer: the HTTP layers' refusals in the form a gRPC-Web client reads.


def passthrough(app: ASGIApp) -> ASGIApp:
    return app  # stands in for the serving layer: these requests never reach a handler


async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("a bug")


@pytest.mark.parametrize(
    ("app", "policy", "headers", "status"),
    [
        (ok_app, HttpPolicy(trusted_hosts=("api.example.com",)), [(b"host", b"evil")], "3"),
        (ok_app, HttpPolicy(max_body_size=1024), [(b"content-length", b"5000")], "8"),
        (failing_app, HttpPolicy(), [], "13"),
    ],
    ids=["untrusted-host-400", "too-large-413", "envelope-500"],
)
async def test_http_refusals_of_grpc_web_calls_become_grpc_statuses(
    app: ASGIApp, policy: HttpPolicy, headers: list[tuple[bytes, bytes]], status: str
) -> None:
    stack = build_stack(app, policy, grpc_web=passthrough)
    sent = await call(stack, http_scope(TELL_JOKE, "POST", [*GRPC_WEB, *headers]), b"")
    assert sent.status == 200
    assert sent.headers[b"content-type"] == b"application/grpc-web+proto"
    assert sent.headers[b"grpc-status"] == status.encode()
    assert sent.headers[b"grpc-message"]
    assert sent.headers[b"x-content-type-options"] == b"nosniff"  # still secured
    assert sent.body == b""


async def test_other_requests_keep_their_problem_responses() -> None:
    stack = build_stack(ok_app, HttpPolicy(max_body_size=1024), grpc_web=passthrough)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"5000")]
    sent = await call(stack, http_scope(TELL_JOKE, "POST", headers), b"")
    assert sent.status == 413
    assert sent.headers[b"content-type"] == b"application/problem+json"


# The setting.


async def test_grpc_web_is_served_by_default_and_the_setting_removes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.chdir(str(tmp_path))  # no .env of the developer's
    request = protocol.wrap_message(False, False, pb.JokeRequest(name="Tom").SerializeToString())
    served = create_service(APP, parse_settings(["--no-grpc"], APP)).asgi
    assert {"GrpcWebMiddleware", "GrpcWebStatusMiddleware"} <= set(layers(served))
    sent = await call(served, http_scope(TELL_JOKE, "POST", GRPC_WEB), request)
    assert sent.status == 200
    messages = list(protocol.unwrap_message_stream(io.BytesIO(sent.body)))
    assert "Tom" in pb.JokeResponse.FromString(messages[0][2]).joke
    assert dict(protocol.unpack_trailers(messages[-1][2]))["grpc-status"] == "0"

    off = create_service(APP, parse_settings(["--no-grpc", "--no-grpc-web"], APP)).asgi
    assert not {"GrpcWebMiddleware", "GrpcWebStatusMiddleware"} & set(layers(off))
    sent = await call(off, http_scope(TELL_JOKE, "POST", GRPC_WEB), request)
    assert sent.status == 404
    monkeypatch.setenv("GRPC_WEB_ENABLED", "false")
    assert parse_settings([], APP).grpc.grpc_web_enabled is False
