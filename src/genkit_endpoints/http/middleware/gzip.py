# SPDX-License-Identifier: Apache-2.0
"""gzip for large JSON responses; never for SSE or anything else.

Only ``application/json`` and ``application/*+json`` bodies of at least ``min_size``
bytes are compressed, and only for clients that accept gzip. Event streams are never
touched: compression buffers frames and breaks incremental delivery (the reference
sample served Litestar's SSE gzip'd). The response start is held back until the first
body message shows the size — a single-message body (every JSON reply here) is
compressed in one call; a multi-message body is compressed as it streams.

Fast path: a request without ``gzip`` in ``Accept-Encoding`` is passed through untouched.
"""

from __future__ import annotations

import zlib

from genkit_endpoints.http.types import ASGIApp, Message, Receive, Scope, Send

_ACCEPT_ENCODING = b"accept-encoding"
_LEVEL = 6
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def accepts_gzip(value: bytes) -> bool:
    for item in value.lower().split(b","):
        coding, _, params = item.partition(b";")
        if coding.strip() in (b"gzip", b"*"):
            q = params.strip()
            return not (q.startswith(b"q=") and float(q[2:] or b"0") == 0)
    return False


def _is_json(content_type: bytes) -> bool:
    mime = content_type.split(b";", 1)[0].strip().lower()
    return mime == b"application/json" or (
        mime.startswith(b"application/") and mime.endswith(b"+json")
    )


class GzipMiddleware:
    def __init__(self, app: ASGIApp, min_size: int = 1024) -> None:
        self.app = app
        self.min_size = min_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.min_size > 0:
            for name, value in scope["headers"]:
                if name == _ACCEPT_ENCODING:
                    try:
                        wanted = accepts_gzip(value)
                    except ValueError:  # a malformed q-value: no compression, no error
                        wanted = False
                    if wanted:
                        await _Responder(self.min_size, send).run(self.app, scope, receive)
                        return
                    break
        await self.app(scope, receive, send)


class _Responder:
    __slots__ = ("compressor", "min_size", "pending", "send", "start")

    def __init__(self, min_size: int, send: Send) -> None:
        self.min_size = min_size
        self.send = send
        self.start: Message | None = None
        self.pending: list[bytes] = []
        self.compressor: zlib._Compress | None = None

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        await app(scope, receive, self.send_maybe_compressed)

    async def send_maybe_compressed(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and self._eligible(message):
            self.start = message  # held back until the body shows its size
        elif kind == "http.response.body" and self.compressor is not None:
            await self._stream(message)
        elif kind == "http.response.body" and self.start is not None:
            await self._first_body(message)
        else:
            await self.send(message)

    async def _first_body(self, message: Message) -> None:
        """Hold small chunks until the size is known to be worth compressing, or the end."""
        assert self.start is not None  # noqa: S101 - only called with a held-back start
        self.pending.append(message.get("body", b""))
        more = message.get("more_body", False)
        size = sum(len(b) for b in self.pending)
        if more and size < self.min_size:
            return
        start, self.start = self.start, None
        body = b"".join(self.pending)
        self.pending.clear()
        if not more and size < self.min_size:
            await self.send(start)  # too small to be worth it
            await self.send({"type": "http.response.body", "body": body})
            return
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers += [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")]
        if not more:
            data = zlib.compress(body, _LEVEL, wbits=_GZIP_WBITS)
            headers.append((b"content-length", str(len(data)).encode()))
            await self.send({**start, "headers": headers})
            await self.send({"type": "http.response.body", "body": data})
            return
        self.compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        await self.send({**start, "headers": headers})
        await self._stream({"type": "http.response.body", "body": body, "more_body": True})

    async def _stream(self, message: Message) -> None:
        assert self.compressor is not None  # noqa: S101 - set before the first call
        more = message.get("more_body", False)
        data = self.compressor.compress(message.get("body", b""))
        data += self.compressor.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    @staticmethod
    def _eligible(start: Message) -> bool:
        content_type = b""
        for name, value in start.get("headers", ()):
            lower = name.lower()
            if lower == b"content-encoding":
                return False
            if lower == b"content-type":
                content_type = value
        return _is_json(content_type)
