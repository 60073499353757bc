# SPDX-License-Identifier: Apache-2.0
"""describe-image fetches the image itself, SSRF-safe, in the real app process.

The app runs with ``IMAGE_FETCH_ALLOWED_NETWORKS=127.0.0.2/32`` next to a fake image
server on 127.0.0.2; a second fake server on 127.0.0.1 serves an image too, and must
never be asked for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from endpoints_hello.generated import genkit_sample_pb2 as pb
from endpoints_hello.generated import genkit_sample_pb2_grpc as pb_grpc
from tests.e2e.conftest import IMAGE_ENV
from tests.e2e.test_errors import assert_problem
from tests.support.image_server import HTML, JPEG, FakeImageServer, Reply
from tests.support.server import ServerProcess, run_server

PRIVATE = "The image URL points to a private or loopback address."
# A timeout short enough for the hanging server, long enough for a loaded CI machine.
LIMITS = {"MAX_IMAGE_BYTES": "4096", "IMAGE_FETCH_TIMEOUT": "3"}


@pytest.fixture(scope="module")
def images() -> Iterator[FakeImageServer]:
    routes = {
        "/cat.jpg": Reply(headers=(("content-type", "image/jpeg"),), body=JPEG),
        "/big.png": Reply(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000, chunked=True),
        "/page.png": Reply(body=HTML),
        "/slow.png": Reply(hang=True),
    }
    with FakeImageServer(routes=routes).running() as server:
        yield server


@pytest.fixture(scope="module")
def loopback() -> Iterator[FakeImageServer]:
    with FakeImageServer(host="127.0.0.1", routes={"/x.png": Reply()}).running() as server:
        yield server


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("describe")
    with run_server(tmp, env={**IMAGE_ENV, **LIMITS}) as server:
        yield server


def test_an_allowed_image_is_described_from_inline_data(
    app: ServerProcess, images: FakeImageServer
) -> None:
    url = images.url("/cat.jpg?v=1")
    with app.client() as c:
        r = c.post("/describe-image", json={"image_url": url}, headers={"x-request-id": "e2e-rid"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image_url"] == url
    # The offline model names the media type it received: sniffed from the bytes, inline.
    assert "image (image/jpeg)" in body["description"]
    hit = next(h for h in images.hits if h.target == "/cat.jpg?v=1")
    assert "e2e-rid" not in str(hit.headers)  # our request id stays with us


def test_a_loopback_url_is_422_naming_the_reason(
    app: ServerProcess, loopback: FakeImageServer
) -> None:
    url = loopback.url("/x.png?token=SECRET-TOKEN")
    with app.client() as c:
        r = c.post("/describe-image", json={"image_url": url})
    problem = assert_problem(r, 422, "/describe-image")
    assert problem["detail"] == PRIVATE
    assert problem["type"] == "urn:genkit-endpoints:problem:image-fetch"
    assert "SECRET" not in r.text
    assert loopback.hits == []
    deadline = time.monotonic() + 5
    refusal = {"event": "image_fetch_refused", "reason": "private", "host": "127.0.0.1"}
    while not any(refusal.items() <= e.items() for e in app.log_events()):
        assert time.monotonic() < deadline, app.log_text()
        time.sleep(0.05)
    assert "SECRET" not in app.log_text()


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/big.png", "The image is larger than 4096 bytes."),
        ("/page.png", "The image URL does not point to an image (PNG, JPEG, GIF or WebP)."),
        ("/missing.png", "The image could not be fetched (the server answered 404)."),
        ("/slow.png", "The image could not be fetched (timeout)."),
    ],
)
def test_unusable_images_are_422_with_the_settings_applied(
    app: ServerProcess, images: FakeImageServer, path: str, detail: str
) -> None:
    started = time.monotonic()
    with app.client() as c:
        r = c.post("/describe-image", json={"image_url": images.url(path)})
    assert assert_problem(r, 422, "/describe-image")["detail"] == detail
    assert time.monotonic() - started < 10  # IMAGE_FETCH_TIMEOUT=3 bounds the slow one


def test_grpc_describe_image_fetches_and_refuses_the_same_way(
    app: ServerProcess, images: FakeImageServer, loopback: FakeImageServer
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GenkitServiceStub(channel)
        ok = stub.DescribeImage(pb.ImageRequest(image_url=images.url("/cat.jpg")), timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            stub.DescribeImage(pb.ImageRequest(image_url=loopback.url("/x.png")), timeout=10)
    assert "image (image/jpeg)" in ok.description
    assert ok.image_url == images.url("/cat.jpg")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == PRIVATE
    assert loopback.hits == []


def test_without_allowed_networks_the_fake_server_is_refused_too(
    tmp_path_factory: pytest.TempPathFactory, images: FakeImageServer
) -> None:
    """The allow-list setting is the only reason 127.0.0.2 is reachable above."""
    before = len(images.hits)
    with (
        run_server(tmp_path_factory.mktemp("no-allow"), args=["--no-grpc"]) as server,
        server.client() as c,
    ):
        r = c.post("/describe-image", json={"image_url": images.url("/cat.jpg")})
    assert assert_problem(r, 422, "/describe-image")["detail"] == PRIVATE
    assert len(images.hits) == before
