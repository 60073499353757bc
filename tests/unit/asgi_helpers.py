# SPDX-License-Identifier: Apache-2.0
"""Drive an ASGI app in-process with raw messages (no framework, no client library)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from genkit_endpoints.http.types import ASGIApp, Message


@dataclass
class Captured:
    messages: list[Message] = field(default_factory=list)

    @property
    def start(self) -> Message:
        return next(m for m in self.messages if m["type"] == "http.response.start")

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.start["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )


def http_scope(
    path: str = "/x", method: str = "GET", headers: Sequence[tuple[bytes, bytes]] = ()
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


async def call(
    app: ASGIApp, scope: dict[str, Any], body: bytes = b"", *, leave_early: bool = False
) -> Captured:
    """Send one request. The client stays connected until the response is complete, or
    with ``leave_early`` disconnects as soon as the first body bytes arrive."""
    sent = Captured()
    received = False
    gone = asyncio.Event()

    async def receive() -> Message:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if leave_early and gone.is_set():
            return  # gone: a server drops what is sent after the disconnect
        sent.messages.append(message)
        if message["type"] != "http.response.body":
            return
        if (leave_early and message.get("body")) or not message.get("more_body", False):
            gone.set()

    await app(scope, receive, send)
    return sent


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run the ASGI lifespan protocol around the block: start-up before it, shutdown after."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))

    async def step(event: str) -> None:
        await inbox.put({"type": f"lifespan.{event}"})
        async with asyncio.timeout(5):
            reply = await outbox.get()
        if reply["type"] != f"lifespan.{event}.complete":
            raise RuntimeError(f"lifespan {event} failed: {reply}")

    try:
        await step("startup")
        yield
        await step("shutdown")
        await task
    finally:
        task.cancel()


@dataclass
class Upload:
    """What the app side pulled from a client sending its body in several messages."""

    chunks: Sequence[bytes]
    pulled_messages: int = 0
    pulled_bytes: int = 0


async def call_chunks(
    app: ASGIApp,
    scope: dict[str, Any],
    chunks: Sequence[bytes],
    *,
    gap: float = 0,
    stall: bool = False,
) -> tuple[Captured, Upload]:
    """Send a request whose body arrives as one ``http.request`` message per chunk (a
    chunked upload), each ``gap`` seconds after the app asked for it (a slow client
    behind a server that reads only on demand). With ``stall`` the body never ends: after
    the chunks the client sends nothing more (no chunks: a body that never starts).

    The client stays until the response is complete. Returns what was sent back and how
    much of the body anything downstream actually pulled."""
    sent = Captured()
    upload = Upload(chunks)
    done = asyncio.Event()

    async def receive() -> Message:
        if upload.pulled_messages < len(chunks):
            if gap:
                await asyncio.sleep(gap)
            chunk = chunks[upload.pulled_messages]
            upload.pulled_messages += 1
            upload.pulled_bytes += len(chunk)
            more = stall or upload.pulled_messages < len(chunks)
            return {"type": "http.request", "body": chunk, "more_body": more}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    await app(scope, receive, send)
    return sent, upload


async def call_gone(app: ASGIApp, scope: dict[str, Any]) -> Captured:
    """A client that disconnected before the app answered: every ``receive`` says so."""
    sent = Captured()

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.messages.append(message)

    await app(scope, receive, send)
    return sent


@asynccontextmanager
async def within(seconds: float) -> AsyncIterator[None]:
    """The block must end within ``seconds``: a hang guard (cancelling 2 s later) that
    also fails a block which only ended because the guard cancelled it."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(seconds + 2):
        yield
    assert loop.time() - started < seconds
