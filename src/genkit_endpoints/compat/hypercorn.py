# SPDX-License-Identifier: Apache-2.0
"""hypercorn's HTTP/1 protocol with request-head rules, a head read deadline and no h2c.

What hypercorn 0.18 leaves open, measured by ``tests/adversarial``: h11 accepts
Content-Length with Transfer-Encoding (Transfer-Encoding wins) and keeps the connection,
so a request hidden in the first one's body is served next (request smuggling); it
accepts ``HTTP/9.9``; ``h11_max_incomplete_size`` bounds a head only while it is
incomplete (a larger head in one read passes) and nothing counts header fields. Its
only clock on a request head is the keep-alive idle timer, so a slow client (slowloris)
holds a connection for ``keep_alive_timeout``; ``read_timeout`` would close any
connection whose client is quiet for that long, also during a long streamed response.
It writes ``100 Continue`` as soon as it has parsed a head with ``Expect: 100-continue``,
before the app runs, so a client sends a body the app is about to refuse (413); here the
100 is held until the app first asks for the body, as uvicorn does. And on plain TCP it
switches to HTTP/2 on a prior-knowledge preface or ``Upgrade: h2c``,
a second parser with other limits that uvicorn and granian (HTTP/1 only here) do not
expose; the REST API is served over HTTP/1.1 everywhere, gRPC has its own server.

hypercorn has no setting for its protocol class, so ``install_hardened_protocol``
replaces the name its connection wrapper instantiates (``hypercorn.protocol.H11Protocol``)
in the serving process, after checking the installed hypercorn against the range in
``genkit_endpoints.compat.SUPPORTED`` and that the methods overridden here (private ones
among them) still exist: a changed hypercorn fails at start-up, not silently. A runner
with worker processes calls ``require_hypercorn`` in the supervisor too, so the refusal
is one line there rather than one per worker. Limits come from ``config.head_limits``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import h11
import hypercorn.protocol
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import (
    AppWrapper,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    H11SendableEvent,
    Scope,
)

from genkit_endpoints.compat import require_supported
from genkit_endpoints.compat.http1 import HeadLimits, head_status

__all__ = ["HardenedH11Protocol", "install_hardened_protocol", "require_hypercorn"]

_OVERRIDDEN = (
    "initiate",
    "handle",
    "_create_stream",
    "_check_protocol",
    "_send_error_response",
    "_send_h11_event",
)


def require_hypercorn() -> str:
    """The installed hypercorn version; ``UnsupportedDependency`` outside the checked range."""
    return require_supported("hypercorn")


class HardenedH11Protocol(H11Protocol):
    """H11Protocol that refuses heads breaking ``_http1`` rules and times their reading."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_limits: HeadLimits = getattr(self.config, "head_limits", None) or HeadLimits()
        self._deadline: asyncio.TimerHandle | None = None
        self._continue_released = False
        self.app = _ContinueOnFirstReceive(self.app, self)

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.head_limits.read_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        # Closed makes hypercorn's TCP server close the socket; no answer to a partial head.
        self._deadline = None
        with contextlib.suppress(RuntimeError):  # the connection's task group already ended
            self.task_group.spawn(self.send, Closed())

    async def initiate(self) -> None:
        await super().initiate()
        self._arm()  # a new connection must deliver its first head in time

    async def handle(self, event: Event) -> None:
        if isinstance(event, RawData):
            if self.stream is None and self._deadline is None:
                self._arm()  # the first byte of a head after a response
        elif isinstance(event, Closed):
            self._disarm()
        await super().handle(event)

    async def _check_protocol(self, event: h11.Request) -> None:
        """HTTP/1.1 only: ``Upgrade: h2c`` is ignored, a ``PRI`` preface gets 505."""

    async def _send_h11_event(self, event: H11SendableEvent) -> None:
        if (
            isinstance(event, h11.InformationalResponse)
            and event.status_code == 100
            and not self._continue_released
        ):
            return  # held until the app asks for the body (release_continue)
        await super()._send_h11_event(event)

    async def release_continue(self) -> None:
        """Send the held ``100 Continue``, if the client still waits for it."""
        if not self._continue_released:
            self._continue_released = True
            if self.connection.they_are_waiting_for_100_continue:
                headers = self.config.response_headers("h11")
                await self._send_h11_event(
                    h11.InformationalResponse(status_code=100, headers=headers)
                )

    async def _create_stream(self, request: h11.Request) -> None:
        self._disarm()
        self._continue_released = False
        version = request.http_version.decode("ascii")
        line = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n")
        status = head_status(version, line, request.headers, self.head_limits)
        if status is not None:
            await self._send_error_response(status)
            await self.send(Closed())
            return
        await super()._create_stream(request)


class _ContinueOnFirstReceive:
    """The app as the protocol calls it: a request that expects 100 gets it at its first receive."""

    def __init__(self, app: AppWrapper, protocol: HardenedH11Protocol) -> None:
        self.app = app
        self.protocol = protocol

    async def __call__(
        self,
        scope: Scope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        sync_spawn: Callable[..., Any],
        call_soon: Callable[..., Any],
    ) -> None:
        protocol = self.protocol
        if not protocol.connection.they_are_waiting_for_100_continue:
            await self.app(scope, receive, send, sync_spawn, call_soon)
            return

        async def receive_continuing() -> ASGIReceiveEvent:
            await protocol.release_continue()
            return await receive()

        await self.app(scope, receive_continuing, send, sync_spawn, call_soon)


def install_hardened_protocol() -> None:
    """Serve HTTP/1 through ``HardenedH11Protocol`` in this process (idempotent)."""
    current = getattr(hypercorn.protocol, "H11Protocol", None)
    if current is HardenedH11Protocol:
        return
    require_hypercorn()
    missing = [name for name in _OVERRIDDEN if not hasattr(H11Protocol, name)]
    if current is not H11Protocol or missing:
        raise RuntimeError(
            "this hypercorn version's HTTP/1 protocol cannot be hardened "
            f"(replaced or missing {missing}); use hypercorn 0.18"
        )
    # hypercorn has no protocol-class setting; its wrapper looks the class up here.
    setattr(hypercorn.protocol, "H11Protocol", HardenedH11Protocol)  # noqa: B010
