"""A local fake LLM provider: Gemini REST and OpenAI chat completions on 127.0.0.1, with faults.

`FakeProvider` is a real HTTP/1.1 server on a free loopback port, run by a background thread
with its own event loop, so it serves async tests in the pytest process and app subprocesses
alike. It speaks just enough of two wires for the real `genkit_google_genai` and
`genkit_openai` plugins: Gemini `GET /v1beta/models` (paginated), `:generateContent` and
`:streamGenerateContent?alt=sse`; OpenAI `GET /v1/models` and `POST /v1/chat/completions`
(unary and `stream: true`). Each generation request consumes the next scripted `Reply` or
`Fault` (FIFO, shared by both wires), then `default`; model listings never consume the script.
Faults: any HTTP status in the wire's error shape (with `Retry-After`), a hang, a slow first
chunk, and a connection cut after N chunks (the client sees an incomplete body, not a clean
end). Limits: plain HTTP/1.1 (no TLS, HTTP/2, compression or pipelining); Gemini under
`/v1beta` only; one candidate/choice; text and function calls only (no media, embeddings, files
or caching); request bodies are recorded, not validated; token counts are word counts; JSON
mode is not enforced -- the scripted text is sent as is, so tests script valid or invalid JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, unquote, urlsplit

Wire = Literal["gemini", "openai"]
Kind = Literal["generate", "list", "other"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 32 * 1024 * 1024
# An idle keep-alive connection is closed after this: the fake never waits on a client forever.
_IDLE_TIMEOUT = 30.0
_GEMINI_MODEL_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")
# google.rpc.Code names, as Google puts them in `error.status`.
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_OPENAI_ERROR = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class ToolCall:
    """A function call the fake model asks the client to run."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """A successful model turn; streamed per word unless `chunks` is given.

    `finish_reason` overrides the wire-native value (`STOP`/`stop`, or `tool_calls` on OpenAI
    when the reply calls tools); `chunk_delay` pauses before every chunk after the first.
    """

    text: str = ""
    tool_call: ToolCall | None = None
    tool_calls: Sequence[ToolCall] = ()
    chunks: Sequence[str] | None = None
    chunk_delay: float = 0.0
    finish_reason: str | None = None

    @property
    def all_tool_calls(self) -> tuple[ToolCall, ...]:
        """`tool_calls` plus the `tool_call` shorthand."""
        return (*self.tool_calls, *((self.tool_call,) if self.tool_call else ()))

    def pieces(self) -> list[str]:
        """The text chunks of a streamed reply; they concatenate back to `text`."""
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\s*\S+\s*", self.text) or ([self.text] if self.text else [])


FaultKind = Literal["status", "hang", "slow_first_chunk", "drop_after"]


@dataclass(frozen=True)
class Fault:
    """A misbehaviour for one generation request; build it with the class methods."""

    kind: FaultKind
    code: int = 500
    message: str | None = None
    retry_after: float | str | None = None
    seconds: float = 0.0
    chunks: int = 0
    reply: Reply | None = None

    @classmethod
    def status(
        cls, code: int, *, message: str | None = None, retry_after: float | str | None = None
    ) -> Fault:
        """Answer with HTTP `code` and the wire's JSON error body (plus `Retry-After`)."""
        return cls("status", code=code, message=message, retry_after=retry_after)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 1) -> Fault:
        """A 429 with `Retry-After`, as both providers send when a quota runs out."""
        return cls.status(429, message="Resource has been exhausted.", retry_after=retry_after)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Send nothing for up to `seconds`, then close the connection without a response.

        Ends early when the client disconnects or the fake stops.
        """
        return cls("hang", seconds=seconds)

    @classmethod
    def slow_first_chunk(cls, seconds: float, reply: Reply | None = None) -> Fault:
        """Send the status line and headers at once, then wait `seconds` before the body."""
        return cls("slow_first_chunk", seconds=seconds, reply=reply)

    @classmethod
    def drop_after(cls, chunks: int, reply: Reply | None = None) -> Fault:
        """Stream `chunks` chunks of `reply` (default reply if None), then cut the connection.

        A unary request gets its headers and half its body before the cut (nothing at all
        when `chunks` is 0).
        """
        return cls("drop_after", chunks=chunks, reply=reply)


Step = Reply | Fault


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it; `body` is the parsed JSON (None if not JSON)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    wire: Wire | None
    kind: Kind
    model: str | None
    streaming: bool
    json_mode: bool


class FakeProvider:
    """The fake provider server; a context manager, thread-safe towards the test thread."""

    def __init__(
        self,
        *,
        default: Reply | None = None,
        gemini_models: Sequence[str] = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"),
        openai_models: Sequence[str] = ("gpt-4o-mini", "gpt-4o"),
        listing_page_size: int = 2,
        stop_timeout: float = 5.0,
    ) -> None:
        self._state = threading.Condition()
        self._default = default or Reply(text="Hello from the fake provider.")
        self._script: deque[Step] = deque()
        self._requests: list[RecordedRequest] = []
        self._disconnects = 0
        self._listing_failures: deque[tuple[Wire | None, int]] = deque()
        self.gemini_models = list(gemini_models)
        self.openai_models = list(openai_models)
        # Small pages by default so the Gemini plugin's pager really follows `nextPageToken`.
        self.listing_page_size = listing_page_size
        self._stop_timeout = stop_timeout
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._port = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        if self._thread is not None:
            raise RuntimeError("FakeProvider already started")
        self._thread = threading.Thread(target=self._run, name="fake-provider", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._stop_timeout):
            raise RuntimeError("fake provider did not start")
        if self._startup_error is not None:
            raise RuntimeError("fake provider failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections (ending any hang) and join the thread, bounded."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(stopping.set)
        thread.join(self._stop_timeout)
        if thread.is_alive():
            raise RuntimeError(f"fake provider thread still running after {self._stop_timeout}s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (0 before `start`)."""
        return self._port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def gemini_base_url(self) -> str:
        """For `GoogleAI(base_url=...)`: the SDK appends `/v1beta/...` itself."""
        return self.base_url

    @property
    def openai_base_url(self) -> str:
        """For `OpenAI(base_url=...)`: the SDK appends `/chat/completions` to it."""
        return f"{self.base_url}/v1"

    # -- scripting and inspection (any thread) ----------------------------------------------

    @property
    def default(self) -> Reply:
        """The reply used once the script is empty."""
        with self._state:
            return self._default

    @default.setter
    def default(self, reply: Reply) -> None:
        with self._state:
            self._default = reply

    def script(self, *steps: Step) -> None:
        """Queue replies/faults; each generation request (either wire) takes the next one."""
        with self._state:
            self._script.extend(steps)

    def pending(self) -> int:
        """Scripted steps not consumed yet."""
        with self._state:
            return len(self._script)

    def fail_model_listing(self, times: int = 1, code: int = 503, wire: Wire | None = None) -> None:
        """Make the next `times` model listings (of `wire`, or either) answer HTTP `code`."""
        with self._state:
            self._listing_failures.extend([(wire, code)] * times)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        with self._state:
            return list(self._requests)

    def calls(self, kind: Kind = "generate", wire: Wire | None = None) -> int:
        """How many requests of `kind` (and `wire`, if given) arrived."""
        return sum(1 for r in self.requests if r.kind == kind and wire in (None, r.wire))

    @property
    def disconnects(self) -> int:
        """Client disconnects seen while the fake was still sending, hanging or waiting."""
        with self._state:
            return self._disconnects

    def reset(self) -> None:
        """Forget the script, recorded requests, listing failures and counters."""
        with self._state:
            self._script.clear()
            self._requests.clear()
            self._listing_failures.clear()
            self._disconnects = 0

    def wait_until_blocking(
        self, predicate: Callable[[FakeProvider], bool], within: float = 2.0
    ) -> None:
        """Block (sync tests only) until `predicate(self)` holds; TimeoutError after `within` s."""
        deadline = time.monotonic() + within
        with self._state:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition on the fake provider not met in time")
                self._state.wait(left)

    async def wait_until(
        self, predicate: Callable[[FakeProvider], bool], within: float = 2.0
    ) -> None:
        """Async tests: `wait_until_blocking` off the event loop, in a worker thread."""
        await asyncio.to_thread(self.wait_until_blocking, predicate, within)

    # -- server loop (fake-provider thread only) ---------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # start() re-raises it instead of timing out blind
            self._startup_error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        connections: set[asyncio.Task[None]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                connections.add(task)
                task.add_done_callback(connections.discard)
            # Finish normally when stop() cancels us: Python 3.11's stream callback calls
            # task.exception() on a cancelled task and logs a spurious traceback.
            with contextlib.suppress(asyncio.CancelledError):
                await self._connection(reader, writer)

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0, limit=_MAX_HEAD)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(connections):
                task.cancel()
            if connections:
                await asyncio.wait(connections, timeout=1.0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            keep_alive = True
            while keep_alive:
                async with asyncio.timeout(_IDLE_TIMEOUT):
                    request = await _read_request(reader)
                if request is None:
                    return
                keep_alive = await self._exchange(_Exchange(self, reader, writer, *request))
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
        ):
            return
        except ValueError:  # unparseable request: answer like any server would, then hang up
            with contextlib.suppress(ConnectionError):
                writer.write(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
        finally:
            writer.transport.abort()

    def _note_disconnect(self) -> None:
        with self._state:
            self._disconnects += 1
            self._state.notify_all()

    def _record(self, request: RecordedRequest) -> Step | tuple[Literal["list-fail"], int] | None:
        """Record `request` and take its step in one critical section (FIFO across wires)."""
        with self._state:
            self._requests.append(request)
            self._state.notify_all()
            if request.kind == "list":
                for i, (wire, code) in enumerate(self._listing_failures):
                    if wire in (None, request.wire):
                        del self._listing_failures[i]
                        return ("list-fail", code)
                return None
            if request.kind == "generate":
                return self._script.popleft() if self._script else self._default
            return None

    async def _exchange(self, ex: _Exchange) -> bool:
        step = self._record(ex.recorded)
        try:
            if ex.recorded.kind == "list":
                if isinstance(step, tuple):
                    return await ex.send_error(step[1], "Fake model listing failure.")
                return await ex.send_json(200, self._listing(ex))
            if ex.recorded.kind == "other":
                return await ex.send_error(
                    404, f"Fake provider: no route for {ex.method} {ex.path}."
                )
            if isinstance(step, Fault):
                return await self._fault(ex, step)
            if isinstance(step, Reply):
                return await ex.send_reply(step)
            return await ex.send_error(500, "Fake provider: no step for this request.")
        finally:
            await ex.close_watch()

    async def _fault(self, ex: _Exchange, fault: Fault) -> bool:
        reply = fault.reply or self.default
        if fault.kind == "status":
            return await ex.send_error(fault.code, fault.message, retry_after=fault.retry_after)
        if fault.kind == "hang":
            await ex.pause(fault.seconds)
            return False
        if fault.kind == "slow_first_chunk":
            return await ex.send_reply(reply, first_delay=fault.seconds)
        return await ex.send_reply(reply, drop_after=fault.chunks)

    def _listing(self, ex: _Exchange) -> dict[str, Any]:
        if ex.recorded.wire == "openai":
            return {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}
                    for m in self.openai_models
                ],
            }
        size = int(ex.recorded.query.get("pageSize") or self.listing_page_size)
        start = int(ex.recorded.query.get("pageToken") or 0)
        page = self.gemini_models[start : start + size]
        body: dict[str, Any] = {"models": [_gemini_model(m) for m in page]}
        if start + size < len(self.gemini_models):
            body["nextPageToken"] = str(start + size)
        return body

    def _next_id(self) -> int:
        return next(self._ids)


@dataclass
class _Exchange:
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


# -- HTTP parsing ---------------------------------------------------------------------------


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], dict[str, str], bytes] | None:
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
    wire: Wire | None = None
    kind: Kind = "other"
    model: str | None = None
    streaming = json_mode = False
    if path.startswith("/v1beta/"):
        wire = "gemini"
        match = _GEMINI_MODEL_PATH.match(path)
        if method == "GET" and path == "/v1beta/models":
            kind = "list"
        elif (
            method == "POST"
            and match
            and match["method"] in ("generateContent", "streamGenerateContent")
        ):
            kind, model = "generate", match["model"]
            # Only the SSE framing is faked; the SDK always asks for it.
            streaming = match["method"] == "streamGenerateContent" and query.get("alt") == "sse"
            gen = (body or {}).get("generationConfig") or {}
            json_mode = gen.get("responseMimeType") == "application/json" or any(
                k in gen for k in ("responseSchema", "responseJsonSchema")
            )
    elif path.startswith("/v1/"):
        wire = "openai"
        if method == "GET" and path == "/v1/models":
            kind = "list"
        elif method == "POST" and path == "/v1/chat/completions" and isinstance(body, dict):
            kind, model = "generate", body.get("model")
            streaming = body.get("stream") is True
            fmt = body.get("response_format") or {}
            json_mode = fmt.get("type") in ("json_object", "json_schema")
    return RecordedRequest(
        method, path, query, headers, body, wire, kind, model, streaming, json_mode
    )


def _reason(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


# -- wire bodies ----------------------------------------------------------------------------


def _error_body(
    wire: Wire, code: int, message: str | None, retry_after: float | str | None
) -> dict[str, Any]:
    text = message or f"Fake provider error {code}."
    if wire == "gemini":
        error: dict[str, Any] = {
            "code": code,
            "message": text,
            "status": _GOOGLE_STATUS.get(code, "INTERNAL" if code >= 500 else "UNKNOWN"),
        }
        if retry_after is not None and not isinstance(retry_after, str):
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after}s",
                }
            ]
        return {"error": error}
    kind, err_code = _OPENAI_ERROR.get(
        code, ("server_error" if code >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": text, "type": kind, "param": None, "code": err_code}}


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_words(v) for v in value.values())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    return 0


def _usage(reply: Reply, request: RecordedRequest) -> tuple[int, int]:
    body = request.body if isinstance(request.body, Mapping) else {}
    prompt = _words(body.get("contents") or body.get("messages") or [])
    return max(prompt, 1), _words(reply.text) + len(reply.all_tool_calls)


def _gemini_model(name: str) -> dict[str, Any]:
    methods = ["embedContent"] if "embed" in name else ["generateContent", "countTokens"]
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "description": "Served by the fake provider.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": methods,
    }


def _gemini_chunk(
    parts: list[dict[str, Any]], request: RecordedRequest, n: int, finish: str | None, usage: Any
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    chunk: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": request.model,
        "responseId": f"fake-{n}",
    }
    if usage:
        prompt, output = usage
        chunk["usageMetadata"] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
        }
    return chunk


def _gemini_calls(reply: Reply) -> list[dict[str, Any]]:
    calls = []
    for call in reply.all_tool_calls:
        fn: dict[str, Any] = {"name": call.name, "args": dict(call.args)}
        if call.id:
            fn["id"] = call.id
        calls.append({"functionCall": fn})
    return calls


def _openai_calls(reply: Reply, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or f"call_fake_{n}_{i}",
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(dict(call.args))},
        }
        for i, call in enumerate(reply.all_tool_calls)
    ]


def _openai_finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.all_tool_calls else "stop")


def _openai_usage(usage: tuple[int, int]) -> dict[str, int]:
    prompt, output = usage
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


def _unary_body(wire: Wire, reply: Reply, request: RecordedRequest, n: int) -> dict[str, Any]:
    usage = _usage(reply, request)
    if wire == "gemini":
        parts = ([{"text": reply.text}] if reply.text else []) + _gemini_calls(reply)
        return _gemini_chunk(parts, request, n, reply.finish_reason or "STOP", usage)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.all_tool_calls:
        message["tool_calls"] = _openai_calls(reply, n)
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _openai_finish(reply),
                "logprobs": None,
            }
        ],
        "usage": _openai_usage(usage),
    }


def _stream_frames(
    wire: Wire, reply: Reply, request: RecordedRequest, n: int
) -> tuple[int, list[bytes]]:
    """Every SSE event of a streamed reply, after how many lead frames carry no content."""
    if wire == "gemini":
        return 0, _gemini_frames(reply, request, n)
    # The role-only opener is not a reply chunk: `drop_after` counts from the one after it.
    return 1, _openai_frames(reply, request, n)


def _gemini_frames(reply: Reply, request: RecordedRequest, n: int) -> list[bytes]:
    events = [[{"text": piece}] for piece in reply.pieces()]
    if reply.all_tool_calls:
        events.append(_gemini_calls(reply))
    events = events or [[{"text": ""}]]
    last = len(events) - 1
    # finishReason and usage ride on the last chunk only, as on the real API.
    chunks = [
        _gemini_chunk(parts, request, n, None, None)
        if i < last
        else _gemini_chunk(parts, request, n, reply.finish_reason or "STOP", _usage(reply, request))
        for i, parts in enumerate(events)
    ]
    # `\r\n\r\n` is what Google sends; the SDK splits events on blank lines either way.
    return [b"data: %s\r\n\r\n" % json.dumps(c).encode() for c in chunks]


def _openai_frames(reply: Reply, request: RecordedRequest, n: int) -> list[bytes]:
    base: dict[str, Any] = {"id": f"chatcmpl-fake-{n}", "object": "chat.completion.chunk"}
    base |= {"created": int(time.time()), "model": request.model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**base, "choices": [choice]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in reply.pieces()]
    for i, call in enumerate(_openai_calls(reply, n)):
        name, args = call["function"]["name"], call["function"]["arguments"]
        half = len(args) // 2
        # Arguments arrive in fragments on the real API; split them so accumulation is exercised.
        opener: dict[str, Any] = {"index": i, "id": call["id"], "type": "function"}
        opener["function"] = {"name": name, "arguments": args[:half]}
        chunks.append(chunk({"tool_calls": [opener]}))
        chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]}))
    chunks.append(chunk({}, _openai_finish(reply)))
    if ((request.body or {}).get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _openai_usage(_usage(reply, request))})
    return [b"data: %s\n\n" % json.dumps(c).encode() for c in chunks] + [b"data: [DONE]\n\n"]


def iter_sse_data(raw: bytes) -> Iterator[str]:
    """The `data:` payloads of an SSE body; a helper for tests that talk to the fake directly."""
    for event in re.split(rb"\r?\n\r?\n", raw):
        for line in event.splitlines():
            if line.startswith(b"data: "):
                yield line[6:].decode()
