# SPDX-License-Identifier: Apache-2.0
"""A fake image server for the describe-image tests: a real HTTP/1.1 server on loopback.

It runs its own event loop in a thread, so sync (e2e) and async (unit) tests can use
it alike. Each path answers with a scripted `Reply` — images, redirects, wrong types,
slow or endless bodies, a request that is never answered — and the server records every
request it receives (`hits`), and how much of each body it managed to write before the
client went away (`written`, `cut_short`). Bind it on 127.0.0.2: an address the fetcher
refuses unless its config allows it, so tests control exactly which server is reachable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from genkit_endpoints import ImageFetchConfig, ImageFetcher

# A valid 1x1 PNG, and the start of a JPEG (the fetcher only reads the magic bytes).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\x00" * 64
    + b"\xff\xd9"
)
HTML = b"<!doctype html><html><body>not an image</body></html>"
ALLOWED_HOST = "127.0.0.2"
ALLOWED_NETWORK = "127.0.0.2/32"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: Sequence[tuple[str, str]] = (("content-type", "image/png"),)
    body: bytes = PNG
    repeat: int = 1  # the body is sent this many times (large bodies without the memory)
    chunked: bool = False  # no Content-Length: Transfer-Encoding: chunked
    delay: float = 0.0  # seconds before each piece of the body
    hang: bool = False  # read the request, then never answer


@dataclass(frozen=True)
class Hit:
    target: str
    headers: dict[str, str]


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status=status, headers=(("location", location),), body=b"")


@dataclass
class FakeImageServer:
    host: str = ALLOWED_HOST
    tls: ssl.SSLContext | None = None
    routes: dict[str, Reply] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    cut_short: dict[str, bool] = field(default_factory=dict)
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI received
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: Callable[[], Awaitable[None]] | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def url(self, path: str, host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [hit.target for hit in self.hits]

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeImageServer]:
        started = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop
        if self.tls is not None:
            self.tls.sni_callback = self._record_sni  # type: ignore[assignment]

        async def serve() -> None:
            server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
            self.port = server.sockets[0].getsockname()[1]
            stop = asyncio.Event()

            async def _stop() -> None:
                for task in list(self._tasks):  # e.g. a request left hanging on purpose
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                stop.set()

            self._stop = _stop
            started.set()
            async with server:
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        if not started.wait(10):
            raise RuntimeError("fake image server did not start")
        try:
            yield self
        finally:
            assert self._stop is not None
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(10)
            thread.join(10)
            loop.close()

    def _record_sni(self, _sock: Any, name: str | None, _ctx: Any) -> None:
        self.server_names.append(name)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1]
        headers = {
            k.strip().lower(): v.strip()
            for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)
        }
        self.hits.append(Hit(target, headers))
        path = target.split("?", 1)[0]
        reply = self.routes.get(path, Reply(status=404, headers=(), body=b""))
        try:
            if reply.hang:
                await asyncio.sleep(30)  # far beyond every client timeout in the tests
                return
            await self._answer(path, reply, reader, writer)
        except (ConnectionError, OSError):
            self.cut_short[path] = True
        finally:
            writer.close()

    async def _answer(
        self, path: str, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        framing = (
            "transfer-encoding: chunked"
            if reply.chunked
            else f"content-length: {len(reply.body) * reply.repeat}"
        )
        lines = [f"HTTP/1.1 {reply.status} Fake", *(f"{k}: {v}" for k, v in reply.headers)]
        writer.write(("\r\n".join([*lines, framing, "connection: close"]) + "\r\n\r\n").encode())
        await writer.drain()
        # The client closing its end shows up as EOF here, even between two slow writes.
        gone = asyncio.ensure_future(reader.read(1))
        self.written[path] = 0
        try:
            for _ in range(reply.repeat):
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if gone.done():
                    self.cut_short[path] = True
                    return
                piece = reply.body
                if reply.chunked:
                    piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                writer.write(piece)
                await writer.drain()
                self.written[path] += len(reply.body)
            if reply.chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        finally:
            gone.cancel()
            if gone.done() and not gone.cancelled():
                gone.exception()  # a reset connection: seen, nothing to report


def offline_fetcher() -> ImageFetcher:
    """A fetcher for tests of the flows, not of fetching: nothing leaves the process.

    Every host "resolves" to 127.0.0.2 (allowed) and an in-process transport answers
    every request with a PNG, so the default public image URL works without a network.
    """

    async def resolve(_host: str, _port: int) -> list[str]:
        return [ALLOWED_HOST]

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "image/png"}, content=PNG)

    return ImageFetcher(
        ImageFetchConfig(allowed_networks=(ALLOWED_NETWORK,)),
        resolver=resolve,
        transport=httpx.MockTransport(answer),
    )
