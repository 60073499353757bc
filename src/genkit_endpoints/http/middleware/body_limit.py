# SPDX-License-Identifier: Apache-2.0
"""Request body limits: size and time, enforced on the bytes as they actually arrive.

Size. Checking ``Content-Length`` alone lets a chunked upload through, so the limit is
counted while the body streams in. A declared length above the limit is refused before
anything is read — which also means no ``100 Continue`` is sent for
``Expect: 100-continue``.

Time. The servers bound how long a request head may take, but not its body: a client
that announces a body and then sends it a byte at a time, or not at all, would hold a
connection and a concurrency slot until the request timeout. So from the app's first
read of the body, the next part is due by

    min(last part + read_timeout, that first read + read_timeout + bytes since / min_rate)

(the rule of Apache's mod_reqtimeout): the body must start within ``read_timeout``, no
pause may be longer, and on average it must keep up ``min_rate`` bytes per second
(0: no rate rule). Time the app spends elsewhere is not the client's: if the deadline
passes while the app is not reading, the clock starts afresh at its next wait.

Either way the refusal is the same: the problem (413 or 408, with ``Connection: close``)
is sent at once, the app is told the client disconnected (every framework handles that
cleanly, unlike an exception raised from ``receive``) and nothing it sends afterwards
reaches the client; the rest of the body is never read and the connection is closed.

Cost: nothing for GET/HEAD; otherwise one timer handle, armed by the first read and
cancelled when the body is complete (a small JSON body arrives with its head, so at
once). It is not moved per part: when it fires it re-computes the deadline and re-arms
for what is left. To
interrupt a read, it cancels the task waiting in it, which the read itself turns back
into a disconnect — only that cancellation, never another one (the request timeout or a
shutdown cancel the same task).
"""

from __future__ import annotations

import asyncio
from typing import Any

from genkit_endpoints.core.errors import ClientTooSlow, EndpointError, PayloadTooLarge
from genkit_endpoints.http.middleware.errors import request_path, send_problem
from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send

_CONTENT_LENGTH = b"content-length"
_DISCONNECT: Message = {"type": "http.disconnect"}
_CLOSE = {"connection": "close"}


class BodyTooLarge(PayloadTooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.", headers=_CLOSE)


class BodyReadTimeout(ClientTooSlow):
    def __init__(self, timeout: float, min_rate: int) -> None:
        rule = f"each part must arrive within {timeout:g} seconds"
        if min_rate:
            rule += f", at {min_rate} bytes per second or more on average"
        super().__init__(f"The request body arrived too slowly: {rule}.", headers=_CLOSE)


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, max_bytes: int, read_timeout: float = 10.0, min_rate: int = 500
    ) -> None:
        if max_bytes < 1:
            raise ValueError("the body limit must be at least 1 byte")
        if not read_timeout > 0:
            raise ValueError("the body read timeout must be positive")
        if min_rate < 0:
            raise ValueError("the minimum body rate must be 0 (off) or positive")
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == _CONTENT_LENGTH:
                # Malformed values are the server's to refuse; here only size matters.
                if value.isdigit() and int(value) > self.max_bytes:
                    await send_problem(send, BodyTooLarge(self.max_bytes), request_path(scope))
                    return
                break
        await _Guard(self, scope, send).run(receive)


class _Guard:
    """One request's body: bytes seen, its read deadline, whether a refusal went out."""

    __slots__ = (
        "base",
        "complete",
        "handle",
        "last",
        "loop",
        "mw",
        "rejected",
        "scope",
        "seen",
        "send",
        "start",
        "started",
        "task",
        "timed_out",
        "waiting",
    )

    def __init__(self, mw: BodyLimitMiddleware, scope: Scope, send: Send) -> None:
        self.mw = mw
        self.scope = scope
        self.send = send
        self.seen = 0
        self.rejected = False  # a 413 or 408 went out (or would have, had nothing started)
        self.started = False  # a response has started
        self.complete = False  # the body ended (or the client left): no deadline any more
        self.waiting = False  # the task is suspended in the server's receive, for the body
        self.timed_out = False  # our timer cancelled the waiting task
        self.handle: asyncio.TimerHandle | None = None  # set while a window is open
        # Set when a window opens (``_arm``), read only while one is open.
        self.loop: asyncio.AbstractEventLoop
        self.task: asyncio.Task[Any] | None  # the task reading the body
        self.start: float  # when the window opened
        self.last: float  # when its last part arrived
        self.base: int  # bytes seen before it opened

    async def run(self, receive: Receive) -> None:
        async def guarded_receive() -> Message:
            if self.rejected:
                return _DISCONNECT
            if self.complete:
                return await receive()  # e.g. a stream waiting for the client to leave
            self.waiting = True
            self.task = asyncio.current_task()
            if self.handle is None:
                self._arm()
            try:
                message = await receive()
            except asyncio.CancelledError:
                # Ours alone: answered below. Anyone else's goes on (uncancel() > 0 when
                # a request timeout or a shutdown cancelled the task too).
                if not (self.timed_out and self.task is not None and self.task.uncancel() == 0):
                    raise
                message = _DISCONNECT
            finally:
                self.waiting = False
            if self.timed_out:
                await self._reject(BodyReadTimeout(self.mw.read_timeout, self.mw.min_rate))
                return _DISCONNECT
            if message["type"] != "http.request":
                self._finish()
                return message
            self.seen += len(message.get("body", b""))
            if self.seen > self.mw.max_bytes:
                await self._reject(BodyTooLarge(self.mw.max_bytes))
                return _DISCONNECT
            if not message.get("more_body", False):
                self._finish()
            elif self.handle is not None:
                self.last = self.loop.time()
            return message

        try:
            await self.mw.app(self.scope, guarded_receive, self._send)
        except Exception:
            if not self.rejected:
                raise
            # The app failed on the disconnect we reported; the client already has its answer.
        finally:
            if self.handle is not None:
                self.handle.cancel()

    def _arm(self) -> None:
        """Start the clock: at the first read, or the first one after the deadline passed
        while the app was busy elsewhere."""
        self.loop = asyncio.get_running_loop()
        self.start = self.last = self.loop.time()
        self.base = self.seen
        self.handle = self.loop.call_at(self.start + self.mw.read_timeout, self._expire)

    def _deadline(self) -> float:
        mw = self.mw
        deadline = self.last + mw.read_timeout
        if mw.min_rate:
            paced = self.start + mw.read_timeout + (self.seen - self.base) / mw.min_rate
            deadline = min(deadline, paced)
        return deadline

    def _expire(self) -> None:
        deadline = self._deadline()
        if self.loop.time() < deadline:  # parts arrived since the timer was set
            self.handle = self.loop.call_at(deadline, self._expire)
        elif self.waiting and self.task is not None:
            self.timed_out = True
            self.task.cancel()
        else:
            self.handle = None  # the app was busy, not the client: the next read re-arms

    def _finish(self) -> None:
        self.complete = True
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    async def _reject(self, err: EndpointError) -> None:
        self.rejected = True
        self._finish()
        if not self.started:
            self.started = True
            await send_problem(self.send, err, request_path(self.scope))

    async def _send(self, message: Message) -> None:
        if self.rejected:
            return  # the client got its 413 or 408; what the app says now goes nowhere
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)
