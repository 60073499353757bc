# SPDX-License-Identifier: Apache-2.0
"""uvicorn internals the kit builds on: its httptools protocol and its drain.

Three subclasses of classes uvicorn does not document for extension, checked against
the range in ``genkit_endpoints.compat.SUPPORTED`` by ``require_uvicorn`` (call it where
they are first used; the uvicorn runner does, in the process that supervises):

* ``HardenedHttpToolsProtocol`` overrides protocol callbacks and reads the protocol's
  state (``cycle``, ``url``, ``headers``, ``parser``, ``server_state``) to add
  request-head limits and a head read deadline;
* ``DrainingServer`` empties ``Server._captured_signals`` so a finished drain exits 0;
* ``DrainingMultiprocess`` overrides ``Multiprocess.terminate_all`` to close the
  supervisor's copy of the listening socket first.

The protocol, in detail.

Why httptools and not h11 (uvicorn 0.54, httptools 0.9, h11 0.16, measured by
``tests/adversarial``): llhttp refuses every framing ambiguity of the corpus with 400 and
a closed connection — Content-Length with Transfer-Encoding, repeated Content-Length,
obs-fold, bare LF, control characters, malformed or overflowing chunk sizes, unknown
versions. h11 accepts Content-Length + Transfer-Encoding (Transfer-Encoding wins) and
keeps the connection open, so a request hidden in the first one's body is served next
(request smuggling); it also accepts obs-fold, bare LF and ``HTTP/9.9``, and waits
forever on an overflowing chunk size. What llhttp lacks is limits — it buffers a head of
any size with any number of headers, and accepts a missing or repeated Host — and h11's
``h11_max_incomplete_event_size`` is no real limit either: it applies only while a head is
incomplete, so 20 KiB or 10 000 headers arriving in one read pass. This subclass adds the
limits (431), the rules of ``compat.http1.head_status``, and what uvicorn lacks with either
parser: a deadline for a request head. Stock uvicorn arms no timer on a new connection
and cancels its keep-alive timer at the first byte of a request, so a client sending a
byte now and then (slowloris) holds a connection forever.

The deadline (``HeadLimits.read_timeout``) runs from a new connection, or from a read
after a response that leaves a head incomplete, until that head is complete: one
``loop.call_later`` handle, no task, and none at all for the usual head that arrives in
one read.
When it fires the connection is closed without an answer (a partial head is not a
request to answer). Body bytes still arriving after the response (an early 413) start it
too, so draining an unread body is bounded; a body the app is reading is bounded by the
app's request timeout instead. Idle time between requests stays uvicorn's keep-alive.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from genkit_endpoints.compat import require_supported
from genkit_endpoints.compat.http1 import HeadLimits, head_status

__all__ = [
    "DrainingMultiprocess",
    "DrainingServer",
    "HardenedHttpToolsProtocol",
    "require_uvicorn",
]


def require_uvicorn() -> str:
    """The installed uvicorn version; ``UnsupportedDependency`` outside the checked range."""
    return require_supported("uvicorn")


class _Refused(Exception):
    """Raised from a parser callback: llhttp stops at once and the status is answered."""


class HardenedHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=HardenedHttpToolsProtocol)``; limits from ``config.head_limits``.

    A uvicorn ``Config`` without ``head_limits`` (e.g. built by a gunicorn worker) gets
    ``HeadLimits()`` defaults.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_limits: HeadLimits = getattr(self.config, "head_limits", None) or HeadLimits()
        self._deadline: asyncio.TimerHandle | None = None
        self._in_message = False  # on_message_begin .. on_message_complete
        self._in_head = False  # on_message_begin .. on_headers_complete
        self._heads = 0  # heads begun on this connection
        self._head_read = 0  # bytes of reads that arrived wholly inside the current head
        self._refusal = 400

    # --- the head deadline -----------------------------------------------------------

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.head_limits.read_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a new connection must deliver its first head in time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = (self._in_head, self._heads)
        super().data_received(data)
        if not self._in_message or self.transport.is_closing():
            return
        if self._in_head and before == (True, self._heads):
            # The same head, still incomplete after a whole read: llhttp keeps a partial
            # header in memory, so bound the bytes read, not only the complete head.
            self._head_read += len(data)
            if self._head_read > self.head_limits.max_bytes:
                self._refusal = 431
                self.send_400_response("")
                return
        # Armed only when a read leaves a head incomplete (most heads come in one read:
        # no timer), or brings body bytes after the response (an early 413): waiting for
        # those is bounded too. Never while the app is answering the request.
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._in_head and self._deadline is None and not self.transport.is_closing():
            # A pipelined head began during the response: its clock, not keep-alive's.
            self._unset_keepalive_if_required()
            self._arm()

    # --- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = self._in_head = True
        self._heads += 1
        self._head_read = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        line = len(self.url) + len(b"DELETE  HTTP/1.1\r\n")
        status = head_status(self.parser.get_http_version(), line, self.headers, self.head_limits)
        if status is not None:
            # Raised inside llhttp's callback: parsing stops at once and uvicorn answers
            # through send_400_response.
            self._refusal = status
            raise _Refused(status)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """Every refusal ends here (uvicorn calls it on any parser error): status, close."""
        status = HTTPStatus(self._refusal)
        defaults = self.server_state.default_headers  # the Date header
        body = status.phrase.encode("ascii")
        head = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("ascii")]
        head += [name + b": " + value + b"\r\n" for name, value in defaults]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class DrainingServer(uvicorn.Server):
    """uvicorn, exiting 0 after a clean drain.

    uvicorn >= 0.29 re-raises the signal after the drain, so the process would die
    "killed by SIGTERM"; a finished drain is a success. The signals to re-raise are kept
    in a private list, emptied here.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


class DrainingMultiprocess(Multiprocess):
    """uvicorn's supervisor, refusing new connections as soon as the drain starts.

    The supervisor keeps its own copy of the listening socket (to respawn workers), so
    after the workers closed theirs the kernel would still complete handshakes into a
    backlog nobody accepts from: clients hang instead of being refused.
    """

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()
