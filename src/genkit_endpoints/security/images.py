# SPDX-License-Identifier: Apache-2.0
"""SSRF-safe download of user-supplied image URLs, so they can be passed inline.

A provider plugin must never be handed a user's URL: Gemini's downloads any http(s) URL
itself, without a size cap. `ImageFetcher` downloads the image instead, under rules a URL
cannot talk its way around: http(s) only and no credentials; every address the host
resolves to must be public (`addresses.is_public`) or inside an explicitly allowed
network, checked after DNS and again on every redirect; the connection goes to the checked
address itself (the URL's host becomes the ``Host`` header and the TLS server name), so a
second DNS answer cannot rebind it; the body is streamed against a byte cap and must
really be an image (magic bytes, not only the header). Every failure is an
`ImageFetchError` (422): the URL is the client's input.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

import httpx
import structlog

from genkit_endpoints.core.errors import ImageFetchError
from genkit_endpoints.security.addresses import IPAddress, in_networks, is_public, parse_networks
from genkit_endpoints.security.image_config import (
    DEFAULT_IMAGE_TYPES,
    IMAGE_TYPE_NAMES,
    ImageFetchConfig,
)

__all__ = [
    "DEFAULT_IMAGE_TYPES",
    "FetchedImage",
    "ImageFetchConfig",
    "ImageFetcher",
    "Resolver",
    "sniff_image_type",
]

# (host, port) -> the addresses to connect to, as strings; the default is getaddrinfo.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
_ISO_BRANDS = {b"avif": "image/avif", b"avis": "image/avif", b"heic": "image/heic",
               b"heix": "image/heic", b"mif1": "image/heif", b"msf1": "image/heif"}  # fmt: skip
_SNIFF_BYTES = 16
_MAX_URL = 8192
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Nothing that identifies the caller or this service's request: no request id, no cookies.
_HEADERS = {
    "user-agent": "genkit-endpoints-image-fetch",
    "accept": "image/png,image/jpeg,image/gif,image/webp,image/*;q=0.8",
    "accept-encoding": "identity",  # a compressed body would dodge the byte cap
}
_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FetchedImage:
    content_type: str  # what the bytes are (sniffed), not what the server claimed
    data: bytes
    url: str  # after redirects

    def data_url(self) -> str:
        """The image as a ``data:`` URL, the inline form every model plugin accepts."""
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def sniff_image_type(head: bytes) -> str | None:
    """The image type the first bytes announce, or None when they are no known image."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12])
    return None


class _Refused(Exception):
    """Internal: a reason code for the log and a sentence for the client."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class ImageFetcher:
    """Downloads images from user-supplied URLs; no per-request state, safe to share.

    ``resolver``, ``transport`` and ``ssl_context`` replace DNS, the wire and the trusted
    CAs (tests, internal CAs); the address check and every limit apply all the same.
    """

    def __init__(
        self,
        config: ImageFetchConfig | None = None,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config or ImageFetchConfig()
        self._allowed = parse_networks(self.config.allowed_networks)
        self._resolver = resolver or _getaddrinfo
        self._transport = transport
        self._ssl_context = ssl_context
        kinds = [IMAGE_TYPE_NAMES[t] for t in self.config.content_types]
        listed = ", ".join(kinds[:-1]) + f" or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
        self._not_image = f"The image URL does not point to an image ({listed})."

    async def fetch(self, url: str) -> FetchedImage:
        """The image at ``url``, or `ImageFetchError` naming why not (never the URL itself)."""
        hosts: list[str] = []
        try:
            async with asyncio.timeout(self.config.timeout):
                image = await self._follow(url, hosts)
        except _Refused as exc:
            reason, detail = exc.reason, exc.detail
        except TimeoutError:
            reason, detail = "timeout", "The image could not be fetched (timeout)."
        else:
            _log.debug("image_fetched", host=hosts[-1], redirects=len(hosts) - 1,
                       bytes=len(image.data), content_type=image.content_type)  # fmt: skip
            return image
        # The host only: a query string may carry tokens, and the URL may be huge.
        _log.info("image_fetch_refused", reason=reason, host=hosts[-1] if hosts else None)
        raise ImageFetchError(detail)

    async def _follow(self, url: str, hosts: list[str]) -> FetchedImage:
        current = _parse(url)
        for _ in range(self.config.max_redirects + 1):
            hosts.append(current.raw_host.decode("ascii", "replace")[:253])
            address = await self._checked_address(current)
            try:
                # A client per hop: no connection, cookie or TLS session carried across hosts.
                async with self._client() as client:
                    request = client.build_request(
                        "GET",
                        current.copy_with(host=str(address)),
                        headers={"host": current.netloc.decode("ascii"), **_HEADERS},
                        extensions={"sni_hostname": current.raw_host.decode("ascii")},
                    )
                    response = await client.send(request, stream=True)
                    try:
                        location = response.headers.get("location")
                        if response.status_code not in _REDIRECTS or location is None:
                            return await self._read(response, current)
                        current = _parse(location, base=current)
                    finally:
                        await response.aclose()
            except httpx.TimeoutException:
                raise _Refused("timeout", "The image could not be fetched (timeout).") from None
            except httpx.InvalidURL:  # e.g. an allowed scoped IPv6 address as the host
                raise _Refused("invalid", "The image URL is not a valid URL.") from None
            except (httpx.HTTPError, OSError):
                raise _Refused(
                    "unreachable", "The image could not be fetched (the connection failed)."
                ) from None
        raise _Refused(
            "redirects",
            f"The image URL redirects too often (more than {self.config.max_redirects} times).",
        )

    async def _checked_address(self, url: httpx.URL) -> IPAddress:
        """The address to connect to; refused unless every address of the host may be used."""
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            found = [ip_address(a) for a in await self._resolver(url.raw_host.decode(), port)]
        except (OSError, UnicodeError, ValueError):
            found = []
        if not found:
            raise _Refused(
                "dns", "The image could not be fetched (its host name does not resolve)."
            )
        # Any one bad answer refuses the host: connecting to "the good one" would leave
        # the choice to whoever controls its DNS.
        if not all(is_public(a) or in_networks(a, self._allowed) for a in found):
            raise _Refused("private", "The image URL points to a private or loopback address.")
        return found[0]

    async def _read(self, response: httpx.Response, url: httpx.URL) -> FetchedImage:
        cfg = self.config
        if response.status_code != 200:
            raise _Refused(
                "status",
                f"The image could not be fetched (the server answered {response.status_code}).",
            )
        declared = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if _ALIASES.get(declared, declared) not in cfg.content_types:
            raise _Refused("not_image", self._not_image)
        if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
            raise _Refused("encoding", "The image could not be fetched (compressed body).")
        too_large = _Refused("too_large", f"The image is larger than {cfg.max_bytes} bytes.")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > cfg.max_bytes:
            raise too_large
        body, kind = bytearray(), None
        async for chunk in response.aiter_bytes():  # identity only: the raw bytes
            body += chunk
            if len(body) > cfg.max_bytes:  # at most one chunk (≤64 KiB) past the cap is held
                raise too_large
            if kind is None and len(body) >= _SNIFF_BYTES:
                kind = self._sniffed(body)  # refuse an HTML page before reading all of it
        return FetchedImage(kind or self._sniffed(body), bytes(body), str(url))

    def _sniffed(self, head: bytes | bytearray) -> str:
        kind = sniff_image_type(bytes(head[:_SNIFF_BYTES]))
        if kind is None or kind not in self.config.content_types:
            raise _Refused("not_image", self._not_image)
        return kind

    def _client(self) -> httpx.AsyncClient:
        cfg = self.config
        if self._ssl_context is None:
            # Built once: loading the CA bundle costs milliseconds per context.
            self._ssl_context = httpx.create_ssl_context(trust_env=False)
        return httpx.AsyncClient(
            transport=self._transport,
            verify=self._ssl_context,
            timeout=httpx.Timeout(cfg.timeout, connect=cfg.connect_timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=0),
            follow_redirects=False,  # followed by hand: each hop is checked first
            trust_env=False,  # no proxy or netrc credentials from the environment
        )


def _parse(url: str, base: httpx.URL | None = None) -> httpx.URL:
    if len(url) > _MAX_URL:
        raise _Refused("invalid", "The image URL is too long.")
    try:
        parsed = base.join(url) if base is not None else httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise _Refused("invalid", "The image URL is not a valid URL.") from None
    if parsed.scheme not in ("http", "https"):
        raise _Refused("scheme", "The image URL must use http or https.")
    if parsed.userinfo:
        raise _Refused("credentials", "The image URL must not contain credentials.")
    if not parsed.raw_host:
        raise _Refused("invalid", "The image URL has no host.")
    return parsed


async def _getaddrinfo(host: str, port: int) -> list[str]:
    # Asynchronous (a worker thread), and the only lookup: the caller connects to the result.
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
