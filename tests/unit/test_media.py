# SPDX-License-Identifier: Apache-2.0
"""SSRF-safe image fetching against real HTTP servers on loopback.

The allowed fake image server listens on 127.0.0.2 (``allowed_networks``); every other
address is refused. Refusals of addresses outside loopback (10.x, 169.254.169.254, …)
run with a transport that records any request it is handed: the check must refuse
before anything is sent, so a wrong implementation fails the test instead of sending
traffic there.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from genkit import Genkit

from endpoints_hello.app import PROMPTS_DIR
from endpoints_hello.flows import build_routes
from endpoints_hello.schemas import ImageInput
from genkit_endpoints.core import routes
from genkit_endpoints.core.errors import ImageFetchError
from genkit_endpoints.model.client import ModelClient
from genkit_endpoints.model.config import ModelCallPolicyConfig
from genkit_endpoints.model.offline import OFFLINE_MODEL, OfflineModel
from genkit_endpoints.security.addresses import is_public
from genkit_endpoints.security.images import (
    FetchedImage,
    ImageFetchConfig,
    ImageFetcher,
    sniff_image_type,
)
from tests.support.image_server import (
    ALLOWED_NETWORK,
    HTML,
    JPEG,
    PNG,
    FakeImageServer,
    Reply,
    redirect,
)

pytestmark = pytest.mark.timeout(30)

PRIVATE = "The image URL points to a private or loopback address."
KIB = 1024


def fetcher(**config: Any) -> ImageFetcher:
    cfg = {"timeout": 2.0, "connect_timeout": 1.0, "allowed_networks": (ALLOWED_NETWORK,)}
    return ImageFetcher(ImageFetchConfig(**{**cfg, **config}))


@pytest.fixture
def server() -> Iterator[FakeImageServer]:
    with FakeImageServer().running() as s:
        yield s


@pytest.fixture
def loopback_recorder() -> Iterator[FakeImageServer]:
    """A server on 127.0.0.1 that would serve an image: it must never see a request."""
    with FakeImageServer(host="127.0.0.1", routes={"/x.png": Reply()}).running() as s:
        yield s


class Tripwire(httpx.AsyncBaseTransport):
    """The wire, for refusals: records what would have been sent, sends nothing."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, headers={"content-type": "image/png"}, content=PNG)


async def refusal(image_fetcher: ImageFetcher, url: str) -> str:
    with pytest.raises(ImageFetchError) as info:
        await image_fetcher.fetch(url)
    assert info.value.status == 422
    assert info.value.grpc_code == "INVALID_ARGUMENT"
    return info.value.detail


# -- fetching an image -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "declared", "expected"),
    [
        ("/cat.png", PNG, "image/png", "image/png"),
        ("/cat.jpg", JPEG, "image/jpeg", "image/jpeg"),
        ("/cat", JPEG, "image/jpg; charset=binary", "image/jpeg"),
        ("/mislabelled.png", JPEG, "image/png", "image/jpeg"),  # the bytes decide the type
    ],
)
async def test_an_image_on_an_allowed_server_is_fetched_with_its_real_type(
    server: FakeImageServer, path: str, body: bytes, declared: str, expected: str
) -> None:
    server.routes[path] = Reply(headers=(("content-type", declared),), body=body)
    image = await fetcher().fetch(server.url(path + "?size=1"))
    assert image == FetchedImage(expected, body, server.url(path + "?size=1"))
    assert image.data_url().startswith(f"data:{expected};base64,")


async def test_the_request_carries_nothing_that_identifies_the_caller(
    server: FakeImageServer,
) -> None:
    server.routes["/cat.png"] = Reply()
    await fetcher().fetch(server.url("/cat.png"))
    (hit,) = server.hits
    assert hit.headers["host"] == f"127.0.0.2:{server.port}"
    assert hit.headers["accept-encoding"] == "identity"
    assert "python-httpx" not in hit.headers["user-agent"]
    sent = {name for name in hit.headers if name.startswith(("x-", "cookie", "authorization"))}
    assert not sent


def test_data_url_is_base64_of_the_bytes() -> None:
    assert FetchedImage("image/png", b"\x89PNG", "http://h/").data_url() == (
        "data:image/png;base64,iVBORw=="
    )


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (PNG[:16], "image/png"),
        (JPEG[:16], "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00", "image/avif"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "image/heic"),
        (HTML[:16], None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_image_types_are_recognised_by_their_magic_bytes(head: bytes, kind: str | None) -> None:
    assert sniff_image_type(head) == kind


# -- addresses ---------------------------------------------------------------------------

REFUSED_HOSTS = [
    "127.0.0.1", "[::1]", "localhost", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1",
    "169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]", "[::]", "[fd00:ec2::254]", "[fe80::1]", "[ff02::1]",
    "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::]", "2130706433", "0x7f.1", "127.1", "017700000001",
    "192.0.2.1", "198.18.0.1", "240.0.0.1",
]  # fmt: skip


@pytest.mark.parametrize("host", REFUSED_HOSTS)
async def test_private_loopback_and_special_addresses_are_refused_before_any_request(
    host: str,
) -> None:
    wire = Tripwire()
    image_fetcher = ImageFetcher(
        ImageFetchConfig(timeout=5, allowed_networks=(ALLOWED_NETWORK,)), transport=wire
    )
    # Refused as private, not ended by the timeout, and nothing reached the wire.
    assert await refusal(image_fetcher, f"http://{host}/cat.png") == PRIVATE
    assert wire.requests == []


async def test_loopback_is_refused_on_the_real_wire_and_its_server_sees_nothing(
    loopback_recorder: FakeImageServer,
) -> None:
    assert await refusal(fetcher(), loopback_recorder.url("/x.png")) == PRIVATE
    assert loopback_recorder.hits == []


async def test_an_allowed_network_is_the_only_exemption(server: FakeImageServer) -> None:
    server.routes["/cat.png"] = Reply()
    assert await refusal(fetcher(allowed_networks=()), server.url("/cat.png")) == PRIVATE
    assert server.hits == []


async def test_one_private_answer_among_public_ones_refuses_the_host() -> None:
    async def resolve(_host: str, _port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.1"]

    wire = Tripwire()
    image_fetcher = ImageFetcher(ImageFetchConfig(timeout=5), resolver=resolve, transport=wire)
    assert await refusal(image_fetcher, "https://images.test/cat.png") == PRIVATE
    assert wire.requests == []


async def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(
    server: FakeImageServer, loopback_recorder: FakeImageServer
) -> None:
    """DNS rebinding: a second answer (127.0.0.1) would be used if the client resolved again."""
    server.routes["/cat.png"] = Reply()
    answers = iter([["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]])
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return next(answers)

    image_fetcher = ImageFetcher(
        ImageFetchConfig(timeout=2, allowed_networks=(ALLOWED_NETWORK,)), resolver=resolve
    )
    image = await image_fetcher.fetch(f"http://images.test:{server.port}/cat.png")
    assert image.data == PNG
    assert asked == [("images.test", server.port)]
    assert [hit.headers["host"] for hit in server.hits] == [f"images.test:{server.port}"]
    assert loopback_recorder.hits == []


def test_public_addresses_pass_the_address_policy() -> None:
    for text in (
        "8.8.8.8",
        "93.184.215.14",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ):
        assert is_public(ipaddress.ip_address(text)), text


# -- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.2/cat.png",
        "file:///etc/passwd",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "gopher://127.0.0.2:70/_GET",
        "//127.0.0.2/cat.png",
    ],
)
async def test_only_http_and_https_urls_are_fetched(url: str) -> None:
    wire = Tripwire()
    image_fetcher = ImageFetcher(
        ImageFetchConfig(allowed_networks=(ALLOWED_NETWORK,)), transport=wire
    )
    detail = await refusal(image_fetcher, url)
    assert detail in {"The image URL must use http or https.", "The image URL has no host."}
    assert wire.requests == []


@pytest.mark.parametrize("userinfo", ["127.0.0.2@", "user:secret@", "a%5C@"])
async def test_urls_with_credentials_are_refused(
    server: FakeImageServer, loopback_recorder: FakeImageServer, userinfo: str
) -> None:
    url = f"http://{userinfo}127.0.0.1:{loopback_recorder.port}/x.png"
    assert await refusal(fetcher(), url) == "The image URL must not contain credentials."
    assert loopback_recorder.hits == []
    assert server.hits == []


async def test_an_overlong_url_is_refused_without_echoing_it() -> None:
    detail = await refusal(fetcher(), "http://127.0.0.2/" + "a" * 10_000)
    assert detail == "The image URL is too long."


# -- redirects ---------------------------------------------------------------------------


async def test_a_redirect_to_loopback_is_refused_before_it_is_followed(
    server: FakeImageServer, loopback_recorder: FakeImageServer
) -> None:
    server.routes["/start.png"] = redirect(loopback_recorder.url("/x.png"))
    assert await refusal(fetcher(), server.url("/start.png")) == PRIVATE
    assert server.paths() == ["/start.png"]
    assert loopback_recorder.hits == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_within_allowed_servers_are_followed(
    server: FakeImageServer, status: int
) -> None:
    server.routes["/a"] = redirect(server.url("/b"), status)
    server.routes["/b"] = redirect("../img/c.png?v=2", status)  # relative to /b
    server.routes["/img/c.png"] = Reply()
    image = await fetcher().fetch(server.url("/a"))
    assert image.url == server.url("/img/c.png?v=2")
    assert server.paths() == ["/a", "/b", "/img/c.png?v=2"]


async def test_too_many_redirects_are_refused_after_the_limit(server: FakeImageServer) -> None:
    for i in range(10):
        server.routes[f"/r{i}"] = redirect(f"/r{i + 1}")
    detail = await refusal(fetcher(max_redirects=3), server.url("/r0"))
    assert detail == "The image URL redirects too often (more than 3 times)."
    assert server.paths() == ["/r0", "/r1", "/r2", "/r3"]


async def test_a_redirect_to_another_scheme_is_refused(server: FakeImageServer) -> None:
    server.routes["/a"] = redirect("file:///etc/passwd")
    assert await refusal(fetcher(), server.url("/a")) == "The image URL must use http or https."


# -- size, type, failures ----------------------------------------------------------------


async def test_an_image_over_the_cap_is_refused_from_its_content_length(
    server: FakeImageServer,
) -> None:
    server.routes["/big.png"] = Reply(body=PNG + b"\x00" * (64 * KIB), repeat=64)  # ~4 MiB
    detail = await refusal(fetcher(max_bytes=32 * KIB), server.url("/big.png"))
    assert detail == f"The image is larger than {32 * KIB} bytes."


async def test_a_chunked_image_over_the_cap_stops_the_download_near_the_cap(
    server: FakeImageServer,
) -> None:
    """No Content-Length: the body is counted as it arrives, and the client hangs up."""
    piece = b"\x00" * (16 * KIB)
    server.routes["/endless.png"] = Reply(
        headers=(("content-type", "image/png"),),
        body=PNG + piece,
        repeat=512,
        chunked=True,
        delay=0.002,
    )  # fmt: skip  (8 MiB in all)
    cap = 128 * KIB
    detail = await refusal(fetcher(max_bytes=cap), server.url("/endless.png"))
    assert detail == f"The image is larger than {cap} bytes."
    # That the fetcher stopped early is read from what the server managed to write.
    deadline = time.monotonic() + 5
    # The server runs in its own thread and loop: polled, not awaited.
    while not server.cut_short.get("/endless.png") and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert server.cut_short["/endless.png"]
    # Written ≥ what the client read; one piece of slack for the write in flight.
    assert server.written["/endless.png"] <= cap + 64 * KIB + len(PNG + piece)


@pytest.mark.parametrize(
    ("declared", "body"),
    [
        ("text/html; charset=utf-8", HTML),
        ("application/octet-stream", PNG),
        ("image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ("image/png", HTML),  # labelled an image, but the bytes say otherwise
        ("image/png", b""),
        ("image/png", b"\x89PN"),
    ],
)
async def test_anything_but_a_supported_image_is_refused(
    server: FakeImageServer, declared: str, body: bytes
) -> None:
    server.routes["/x"] = Reply(headers=(("content-type", declared),), body=body)
    detail = await refusal(fetcher(), server.url("/x"))
    assert detail == "The image URL does not point to an image (PNG, JPEG, GIF or WebP)."


async def test_a_large_html_page_labelled_png_is_refused_after_its_first_bytes(
    server: FakeImageServer,
) -> None:
    piece = HTML + b" " * (64 * KIB)
    page = Reply(body=piece, repeat=200, chunked=True, delay=0.002)
    server.routes["/page.png"] = page
    await refusal(fetcher(), server.url("/page.png"))
    # The server sees the client hang up after a few of the 200 pieces (polled: it runs
    # in its own thread and loop); a count of bytes, not a race against the clock.
    deadline = time.monotonic() + 10
    while not server.cut_short.get("/page.png") and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert server.cut_short["/page.png"]
    assert server.written["/page.png"] <= 8 * len(piece)


async def test_a_compressed_body_is_refused(server: FakeImageServer) -> None:
    headers = (("content-type", "image/png"), ("content-encoding", "gzip"))
    server.routes["/z.png"] = Reply(headers=headers)
    detail = await refusal(fetcher(), server.url("/z.png"))
    assert detail == "The image could not be fetched (compressed body)."


@pytest.mark.parametrize("status", [404, 500, 503, 204])
async def test_an_image_server_error_is_a_client_error_naming_the_status(
    server: FakeImageServer, status: int
) -> None:
    server.routes["/x.png"] = Reply(status=status, headers=(), body=b"")
    detail = await refusal(fetcher(), server.url("/x.png"))
    assert detail == f"The image could not be fetched (the server answered {status})."


async def test_a_refused_connection_is_could_not_be_fetched() -> None:
    with socket.socket() as s:  # a port on 127.0.0.2 that nobody listens on
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    detail = await refusal(fetcher(), f"http://127.0.0.2:{port}/x.png")
    assert detail == "The image could not be fetched (the connection failed)."


async def test_an_unresolvable_host_is_could_not_be_fetched() -> None:
    async def resolve(_host: str, _port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    image_fetcher = ImageFetcher(resolver=resolve, transport=Tripwire())
    detail = await refusal(image_fetcher, "https://nowhere.test/x.png")
    assert detail == "The image could not be fetched (its host name does not resolve)."


async def test_a_server_that_never_answers_times_out_within_bounds(
    server: FakeImageServer,
) -> None:
    server.routes["/slow.png"] = Reply(hang=True)
    started = time.monotonic()
    detail = await refusal(fetcher(timeout=0.5), server.url("/slow.png"))
    elapsed = time.monotonic() - started
    assert detail == "The image could not be fetched (timeout)."
    # The server never answers: only the 0.5 s timeout ends the wait. The upper bound is
    # far above it, so a busy machine cannot fail the test.
    assert 0.4 <= elapsed < 15, elapsed


async def test_a_trickling_body_is_cut_by_the_overall_timeout(server: FakeImageServer) -> None:
    """Each piece arrives well within a read timeout; the whole download does not."""
    # 1000 pieces 50 ms apart: the whole body would take 50 s, far above any bound here.
    server.routes["/drip.png"] = Reply(body=PNG, repeat=1000, delay=0.05)
    started = time.monotonic()
    detail = await refusal(fetcher(timeout=0.5), server.url("/drip.png"))
    assert detail == "The image could not be fetched (timeout)."
    assert time.monotonic() - started < 15


async def test_refusals_are_logged_with_the_host_but_never_the_query(
    server: FakeImageServer,
) -> None:
    server.routes["/x.png"] = Reply(status=500, headers=(), body=b"")
    url = server.url("/x.png?token=SECRET-TOKEN")
    with structlog.testing.capture_logs() as logs:
        detail = await refusal(fetcher(), url)
    assert "SECRET" not in detail
    (event,) = [e for e in logs if e["event"] == "image_fetch_refused"]
    assert (event["reason"], event["host"]) == ("status", "127.0.0.2")
    assert "SECRET" not in repr(logs)


@pytest.mark.parametrize(
    "config",
    [
        {"allowed_networks": ("not-a-cidr",)},
        {"content_types": ("image/svg+xml",)},
        {"content_types": ()},
        {"max_bytes": 0},
        {"timeout": 0},
        {"max_redirects": -1},
    ],
)
def test_invalid_config_is_refused_when_built(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        ImageFetchConfig(**config)


# -- TLS: connect to the checked address, verify the URL's host name ---------------------


def _certificate(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def tls_server(tmp_path: Any) -> Iterator[tuple[FakeImageServer, ssl.SSLContext]]:
    """An https image server for images.test on 127.0.0.2, and a client context trusting it."""
    cert, key = _certificate("images.test")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_ctx = ssl.create_default_context(cadata=cert.decode())
    with FakeImageServer(tls=server_ctx, routes={"/cat.png": Reply()}).running() as s:
        yield s, client_ctx


async def _to_fake_server(_host: str, _port: int) -> list[str]:
    return ["127.0.0.2"]


async def test_https_verifies_the_url_host_while_connecting_to_its_address(
    tls_server: tuple[FakeImageServer, ssl.SSLContext],
) -> None:
    server, client_ctx = tls_server
    image_fetcher = ImageFetcher(
        ImageFetchConfig(timeout=2, allowed_networks=(ALLOWED_NETWORK,)),
        resolver=_to_fake_server,
        ssl_context=client_ctx,
    )
    image = await image_fetcher.fetch(f"https://images.test:{server.port}/cat.png")
    assert image.data == PNG
    assert server.server_names == ["images.test"]
    assert server.hits[0].headers["host"] == f"images.test:{server.port}"


async def test_https_with_a_certificate_for_another_name_is_refused(
    tls_server: tuple[FakeImageServer, ssl.SSLContext],
) -> None:
    server, client_ctx = tls_server
    image_fetcher = ImageFetcher(
        ImageFetchConfig(timeout=2, allowed_networks=(ALLOWED_NETWORK,)),
        resolver=_to_fake_server,
        ssl_context=client_ctx,
    )
    detail = await refusal(image_fetcher, f"https://other.test:{server.port}/cat.png")
    assert detail == "The image could not be fetched (the connection failed)."
    assert server.hits == []


# -- the describe_image flow -------------------------------------------------------------


def _describe_route(images: ImageFetcher) -> routes.FlowRoute:
    ai = Genkit(plugins=[OfflineModel()], model=OFFLINE_MODEL, prompt_dir=PROMPTS_DIR)
    return build_routes(ai, ModelClient(ai, ModelCallPolicyConfig()), images).by_name[
        "describe_image"
    ]


async def test_describe_image_passes_the_fetched_image_inline(server: FakeImageServer) -> None:
    server.routes["/cat.jpg"] = Reply(headers=(("content-type", "image/jpeg"),), body=JPEG)
    url = server.url("/cat.jpg")
    output = await routes.invoke(_describe_route(fetcher()), ImageInput(image_url=url))
    # The offline model names the media type it was given: the sniffed one, inline.
    assert "image (image/jpeg)" in output["description"]
    assert output["image_url"] == url
    assert server.paths() == ["/cat.jpg"]


async def test_describe_image_refuses_a_private_url_without_calling_the_model(
    loopback_recorder: FakeImageServer,
) -> None:
    route = _describe_route(fetcher())
    with pytest.raises(ImageFetchError) as info:
        await routes.invoke(route, ImageInput(image_url=loopback_recorder.url("/x.png")))
    assert info.value.detail == PRIVATE
    assert loopback_recorder.hits == []
