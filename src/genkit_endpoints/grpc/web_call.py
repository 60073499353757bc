# SPDX-License-Identifier: Apache-2.0
"""The ``ServicerContext`` of a gRPC-Web call, and how its answer goes on the wire.

The handlers and interceptors the native server runs are written against gRPC's
``ServicerContext``; ``WebCall`` gives them one over an ASGI request: the request's
headers as metadata, the client's address as the peer, ``grpc-timeout`` as the time
remaining, ``abort`` as a status kept for the trailers. What they write leaves at once:
the response headers with the first message, each message as a frame (base64 in text
mode), then the status in a trailers frame — or, when nothing was written, in the
response headers alone (a trailers-only response). A client that is gone turns the next
write into a cancellation, so the handler stops as it would on a reset stream.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import grpc

from genkit_endpoints.core.grpc_wire import grpc_message
from genkit_endpoints.grpc.interceptors import METADATA_KEY
from genkit_endpoints.grpc.web_framing import frame, trailers_frame

__all__ = ["WebCall"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class WebCall(grpc.aio.ServicerContext):  # type: ignore[misc]
    """One gRPC-Web call as the servicer and the interceptors see it."""

    def __init__(
        self,
        send: Send,
        *,
        text: bool,
        content_type: bytes,
        metadata: Sequence[tuple[str, str | bytes]],
        peer: str,
        deadline: float | None,
    ) -> None:
        self._send = send
        self._text = text
        self._content_type = content_type
        self._metadata = tuple(metadata)
        self._peer = peer
        self.deadline = deadline  # loop time, or None without grpc-timeout
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailers: tuple[tuple[str, str | bytes], ...] = ()
        self._serializer: Callable[[Any], bytes] = bytes
        self.started = False  # response headers sent
        self.gone = False  # the client disconnected

    # What the handlers and interceptors read.
    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}  # no transport security the call could prove an identity with

    def time_remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailers

    def cancelled(self) -> bool:
        return self.gone

    def done(self) -> bool:
        return self.gone

    # What the handlers and interceptors do.
    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailers = tuple(trailing_metadata)

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        self._code = code
        self._details = details
        self._trailers = tuple(trailing_metadata)
        raise grpc.aio.AbortError

    async def abort_with_status(self, status: Any) -> None:
        await self.abort(status.code, status.details, status.trailing_metadata)

    async def write(self, message: Any) -> None:
        await self.send_message(self._serializer(message))

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        return None  # nothing sends it; trailers carry what the kit reports

    async def read(self) -> Any:
        raise NotImplementedError("gRPC-Web requests carry one message")

    def set_compression(self, compression: Any) -> None:
        return None

    def disable_next_message_compression(self) -> None:
        return None

    # The wire.
    def serve_with(self, serializer: Callable[[Any], bytes]) -> None:
        self._serializer = serializer

    async def send_message(self, payload: bytes) -> None:
        data = frame(payload)
        body = base64.b64encode(data) if self._text else data
        if not await self._start() or not await self._out(body, more=True):
            # The client is gone: the call ends as a cancelled one, as when gRPC sees
            # the stream reset, so the handler stops and nothing reports a bug.
            raise asyncio.CancelledError

    async def finish(self) -> None:
        """Send the status: in a trailers frame after messages, else in the headers."""
        code = self._code or grpc.StatusCode.OK
        status = [("grpc-status", str(code.value[0]))]
        if self._details:
            status.append(("grpc-message", grpc_message(self._details)))
        trailers = [*status, *((k, _text(k, v)) for k, v in self._trailers)]
        if not self.started:
            # Trailers-only: the request id is already a header of the HTTP layer's.
            if await self._start([(k, v) for k, v in trailers if k != METADATA_KEY]):
                await self._out(b"", more=False)
            return
        data = trailers_frame(trailers)
        await self._out(base64.b64encode(data) if self._text else data, more=False)

    async def _start(self, headers: Sequence[tuple[str, str]] = ()) -> bool:
        if self.started:
            return not self.gone
        self.started = True
        raw = [(b"content-type", self._content_type)]
        raw += [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers]
        if headers:
            raw.append((b"content-length", b"0"))
        return await self._write({"type": "http.response.start", "status": 200, "headers": raw})

    async def _out(self, body: bytes, *, more: bool) -> bool:
        return await self._write({"type": "http.response.body", "body": body, "more_body": more})

    async def _write(self, message: Message) -> bool:
        """Send ``message``; False once the client is gone (some servers raise then)."""
        if self.gone:
            return False
        try:
            await self._send(message)
        except (OSError, RuntimeError):  # what the servers raise for a closed connection
            self.gone = True
        return not self.gone


def _text(key: str, value: str | bytes) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii") if key.endswith("-bin") else value.decode()
    return value
