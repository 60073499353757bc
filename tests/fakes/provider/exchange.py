# SPDX-License-Identifier: Apache-2.0
"""One HTTP/1.1 exchange with the fake: read a request, classify it, write the response.

`read_request` parses a request off a connection (``Content-Length`` or chunked bodies);
`Exchange` records it as a `RecordedRequest` of its wire and writes what the server decides:
JSON, an error in the wire's shape, or a reply -- unary or as chunked SSE -- delayed or cut
short for faults. A disconnect watch lets pauses end as soon as the client hangs up.
`iter_sse_data` reads such an SSE body back, for tests that talk to the fake directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.provider import gemini, openai
from tests.fakes.provider.script import RecordedRequest, Reply, Wire

if TYPE_CHECKING:
    from tests.fakes.provider.server import FakeProvider

_MAX_BODY = 32 * 1024 * 1024


async def read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], dict[str, str], bytes] | None:
    """The next request as (method, path, query, headers, body); None on a clean close."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None  # the client closed an idle keep-alive connection
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        length = int(headers.get("content-length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    return method.upper(), unquote(url.path), dict(parse_qsl(url.query)), headers, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected from SDK clients
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > _MAX_BODY:
            raise ValueError("request body too large")


def _classify(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], raw: bytes
) -> RecordedRequest:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if path.startswith(gemini.PREFIX):
        return gemini.classify(method, path, query, headers, body)
    if path.startswith(openai.PREFIX):
        return openai.classify(method, path, query, headers, body)
    return RecordedRequest(method, path, query, headers, body, None, "other", None, False, False)


def _reason(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _error_body(
    wire: Wire, code: int, message: str | None, retry_after: float | str | None
) -> dict[str, Any]:
    text = message or f"Fake provider error {code}."
    if wire == "gemini":
        return gemini.error_body(code, text, retry_after)
    return openai.error_body(code, text)


def _unary_body(wire: Wire, reply: Reply, request: RecordedRequest, n: int) -> dict[str, Any]:
    if wire == "gemini":
        return gemini.unary_body(reply, request, n)
    return openai.unary_body(reply, request, n)


def _stream_frames(
    wire: Wire, reply: Reply, request: RecordedRequest, n: int
) -> tuple[int, list[bytes]]:
    """Every SSE event of a streamed reply, after how many lead frames carry no content."""
    if wire == "gemini":
        return 0, gemini.stream_frames(reply, request, n)
    # The role-only opener is not a reply chunk: `drop_after` counts from the one after it.
    return 1, openai.stream_frames(reply, request, n)


@dataclass
class Exchange:
    """One request/response on a connection; owns the disconnect watch for its pauses."""

    fake: FakeProvider
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    recorded: RecordedRequest = field(init=False)
    disconnected: bool = False
    _watch: asyncio.Task[bytes] | None = None

    def __post_init__(self) -> None:
        self.recorded = _classify(self.method, self.path, self.query, self.headers, self.raw_body)

    # -- low level -----------------------------------------------------------------------

    def _lost(self) -> bool:
        if not self.disconnected:
            self.disconnected = True
            self.fake._note_disconnect()
        return False

    async def _write(self, data: bytes) -> bool:
        if self.disconnected or self.writer.transport.is_closing():
            return self._lost()
        self.writer.write(data)
        try:
            await self.writer.drain()
        except ConnectionError:
            return self._lost()
        return True

    async def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False (and stop early) if the client left or the fake stops."""
        if seconds <= 0:
            return True
        stopping = self.fake._stopping
        if stopping is None or stopping.is_set():
            return False
        if self._watch is None:
            # An HTTP/1.1 client sends nothing while it awaits our response, so a read that
            # completes means it hung up (b"" or a reset); pipelining is not supported.
            self._watch = asyncio.ensure_future(self.reader.read(1))
        sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
        stopper = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({self._watch, sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        if self._watch.done():
            return self._lost()
        return not stopping.is_set()

    async def close_watch(self) -> None:
        """End the disconnect watch before the connection reads its next request."""
        watch, self._watch = self._watch, None
        if watch is None:
            return
        watch.cancel()
        # The cancelled read must unwind before anyone else may wait on the reader.
        await asyncio.wait({watch})
        if not watch.cancelled():
            watch.exception()  # consume it: a reset is expected, not worth a warning

    async def _head(self, code: int, headers: Mapping[str, str]) -> bool:
        reason = _reason(code)
        lines = [f"HTTP/1.1 {code} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
        return await self._write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def _cut(self) -> bool:
        """Close mid-response: flush what was written, then abort so no terminator follows."""
        transport = self.writer.transport
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        for _ in range(100):  # abort() discards unsent bytes; let the chunks reach the client
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        transport.abort()
        return False

    # -- responses ----------------------------------------------------------------------

    async def send_json(self, code: int, body: Any, extra: Mapping[str, str] | None = None) -> bool:
        data = json.dumps(body).encode()
        head = {"Content-Type": "application/json; charset=UTF-8", "Content-Length": str(len(data))}
        return await self._head(code, {**head, **(extra or {})}) and await self._write(data)

    async def send_error(
        self, code: int, message: str | None, retry_after: float | str | None = None
    ) -> bool:
        extra = {} if retry_after is None else {"Retry-After": _retry_after(retry_after)}
        wire = self.recorded.wire or "openai"
        return await self.send_json(code, _error_body(wire, code, message, retry_after), extra)

    async def send_reply(
        self, reply: Reply, *, first_delay: float = 0.0, drop_after: int | None = None
    ) -> bool:
        """Answer with `reply`; `first_delay` holds the body back, `drop_after` cuts it short."""
        wire = self.recorded.wire
        if wire is None:
            return await self.send_error(404, "Fake provider: unknown wire.")
        if drop_after == 0:
            return await self._cut()
        n = self.fake._next_id()
        if self.recorded.streaming:
            return await self._send_stream(wire, reply, n, first_delay, drop_after)
        body = json.dumps(_unary_body(wire, reply, self.recorded, n)).encode()
        head = {"Content-Type": "application/json; charset=UTF-8", "Content-Length": str(len(body))}
        if not await self._head(200, head) or not await self.pause(first_delay):
            return False
        if drop_after is None:
            return await self._write(body)
        await self._write(body[: len(body) // 2])
        return await self._cut()

    async def _send_stream(
        self, wire: Wire, reply: Reply, n: int, first_delay: float, drop_after: int | None
    ) -> bool:
        lead, frames = _stream_frames(wire, reply, self.recorded, n)
        if drop_after is not None:
            frames = frames[: lead + drop_after]
        head = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        if not await self._head(200, {**head, "Transfer-Encoding": "chunked"}):
            return False
        ok = await self.pause(first_delay)
        for i, frame in enumerate(frames):
            if not ok:
                return False
            if i and reply.chunk_delay:
                ok = await self.pause(reply.chunk_delay)
            # One SSE event per HTTP chunk, as the real servers flush them.
            ok = ok and await self._write(b"%x\r\n%s\r\n" % (len(frame), frame))
        if drop_after is not None:
            return await self._cut()
        return ok and await self._write(b"0\r\n\r\n")


def iter_sse_data(raw: bytes) -> Iterator[str]:
    """The `data:` payloads of an SSE body; a helper for tests that talk to the fake directly."""
    for event in re.split(rb"\r?\n\r?\n", raw):
        for line in event.splitlines():
            if line.startswith(b"data: "):
                yield line[6:].decode()
