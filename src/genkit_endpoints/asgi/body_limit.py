"""Request body limit, enforced on the bytes actually received (SPEC §4.1, §9).

Checking ``Content-Length`` alone lets a chunked upload through (the reference sample's
defect), so the limit is counted while the body streams in. A declared length above the
limit is refused before anything is read — which also means no ``100 Continue`` is sent
for ``Expect: 100-continue``. When a streamed body crosses the limit, the 413 is sent at
once, the app is told the client disconnected (every framework handles that cleanly,
unlike an exception raised from ``receive``) and nothing it sends afterwards reaches the
client; the rest of the body is never read and the connection is closed.
"""

from __future__ import annotations

from genkit_endpoints.asgi.errors import request_path, send_problem
from genkit_endpoints.asgi.types import ASGIApp, Message, Receive, Scope, Send
from genkit_endpoints.errors import PayloadTooLarge

_CONTENT_LENGTH = b"content-length"
_DISCONNECT: Message = {"type": "http.disconnect"}


class BodyTooLarge(PayloadTooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than {limit} bytes.", headers={"connection": "close"}
        )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("the body limit must be at least 1 byte")
        self.app = app
        self.max_bytes = max_bytes

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
    """Per-request state: bytes seen, whether the 413 went out, whether the app started."""

    __slots__ = ("app", "limit", "rejected", "scope", "seen", "send", "started")

    def __init__(self, mw: BodyLimitMiddleware, scope: Scope, send: Send) -> None:
        self.app = mw.app
        self.limit = mw.max_bytes
        self.scope = scope
        self.send = send
        self.seen = 0
        self.rejected = False
        self.started = False

    async def run(self, receive: Receive) -> None:
        async def counting_receive() -> Message:
            if self.rejected:
                return _DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                self.seen += len(message.get("body", b""))
                if self.seen > self.limit:
                    await self._reject()
                    return _DISCONNECT
            return message

        try:
            await self.app(self.scope, counting_receive, self._send)
        except Exception:
            if not self.rejected:
                raise
            # The app failed on the disconnect we reported; the client already has its 413.

    async def _reject(self) -> None:
        self.rejected = True
        if not self.started:
            self.started = True
            await send_problem(self.send, BodyTooLarge(self.limit), request_path(self.scope))

    async def _send(self, message: Message) -> None:
        if self.rejected:
            return  # the client got the 413; what the app says now goes nowhere
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)
