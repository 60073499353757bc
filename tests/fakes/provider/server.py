# SPDX-License-Identifier: Apache-2.0
"""The fake provider's server: `FakeProvider`, its script, its record and its event loop.

`FakeProvider` is what tests hold: it starts an asyncio HTTP/1.1 server on a free loopback
port in a background thread, keeps the script of replies and faults and the record of
requests behind one lock (so the test thread may script and inspect while it serves), and
decides each request's answer -- a model listing, the next scripted step, or a 404 -- which
an `Exchange` then writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, Self

from tests.fakes.provider import gemini, openai
from tests.fakes.provider.exchange import Exchange, read_request
from tests.fakes.provider.script import Fault, Kind, RecordedRequest, Reply, Step, Wire

_MAX_HEAD = 64 * 1024
# An idle keep-alive connection is closed after this: the fake never waits on a client forever.
_IDLE_TIMEOUT = 30.0


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
        self._connections_accepted = 0
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

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far: how tests see whether clients reuse connections."""
        with self._state:
            return self._connections_accepted

    def reset(self) -> None:
        """Forget the script, recorded requests, listing failures and counters."""
        with self._state:
            self._script.clear()
            self._requests.clear()
            self._listing_failures.clear()
            self._disconnects = 0
            self._connections_accepted = 0

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
            with self._state:
                self._connections_accepted += 1
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
                    request = await read_request(reader)
                if request is None:
                    return
                keep_alive = await self._exchange(Exchange(self, reader, writer, *request))
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

    async def _exchange(self, ex: Exchange) -> bool:
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

    async def _fault(self, ex: Exchange, fault: Fault) -> bool:
        reply = fault.reply or self.default
        if fault.kind == "status":
            return await ex.send_error(fault.code, fault.message, retry_after=fault.retry_after)
        if fault.kind == "hang":
            await ex.pause(fault.seconds)
            return False
        if fault.kind == "slow_first_chunk":
            return await ex.send_reply(reply, first_delay=fault.seconds)
        return await ex.send_reply(reply, drop_after=fault.chunks)

    def _listing(self, ex: Exchange) -> dict[str, Any]:
        if ex.recorded.wire == "openai":
            return openai.listing(self.openai_models)
        return gemini.listing(self.gemini_models, ex.recorded.query, self.listing_page_size)

    def _next_id(self) -> int:
        return next(self._ids)
