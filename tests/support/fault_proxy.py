# SPDX-License-Identifier: Apache-2.0
"""A TCP fault proxy on loopback, for putting Redis (or a provider) through outages.

Between a client and an upstream ``127.0.0.1:port`` it forwards bytes both ways, or
injects one of three faults, switchable at any time from the test:

* ``pass``      — forward (the normal case);
* ``refuse``    — stop listening: new connections are refused, open ones are closed;
* ``reset``     — like ``refuse``, but open connections are reset (RST), as when the host
  behind them restarted or a middlebox dropped its state;
* ``blackhole`` — accept and read, never forward or answer (a hung host or a dropped
  route: the client's own timeouts are all that save it); open connections go silent.

Independently of the mode, ``delay_responses(seconds, count)`` holds back the next
``count`` reads from upstream for ``seconds`` each before forwarding them: one slow
answer from a healthy Redis (as when the machine is saturated), not an outage.

It runs in a thread with its own event loop, so it works for in-process tests and for
server processes alike. Every connection it holds is closed on ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Literal

from tests.support.server import free_port

Mode = Literal["pass", "refuse", "reset", "blackhole"]
_CHUNK = 65536


class FaultProxy:
    def __init__(self, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.port = free_port()
        self.mode: Mode = "pass"
        self._delays: list[float] = []  # seconds, one per upstream read still to delay
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._listen())

    # --- control (from the test's thread) ---------------------------------------------

    def set_mode(self, mode: Mode) -> None:
        self._call(self._switch(mode))

    def delay_responses(self, seconds: float, count: int = 1) -> None:
        self._call(self._set_delays([seconds] * count))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def url(self, scheme: str = "redis", path: str = "/0") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def _call(self, coro: object) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        future.result(timeout=10)

    # --- the proxy (on its own loop) ---------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )

    async def _switch(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        if mode in ("refuse", "reset"):
            await self._stop_listening()
            self._close_all(reset=mode == "reset")
        elif previous in ("refuse", "reset"):
            await self._listen()
        if mode == "blackhole":
            pass  # open connections stop being forwarded (see _pipe)

    async def _set_delays(self, delays: list[float]) -> None:
        self._delays = delays

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _close_all(self, *, reset: bool = False) -> None:
        for writer in list(self._writers):
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    # Linger 0: close() sends RST instead of FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()
        self._writers.clear()

    async def _shutdown(self) -> None:
        await self._stop_listening()
        self._close_all()
        # Connection handlers still piping: end them here, not with the loop.
        current = asyncio.current_task()
        handlers = [t for t in asyncio.all_tasks() if t is not current]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.mode == "blackhole":
            await self._swallow(reader)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.close()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer),
            self._pipe(up_reader, writer, answers=True),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            w.close()
            self._writers.discard(w)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, answers: bool = False
    ) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            if self.mode == "blackhole":
                continue  # swallowed: the other side waits for an answer that never comes
            if answers and self._delays:
                await asyncio.sleep(self._delays.pop())
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(_CHUNK):
                pass


@contextlib.contextmanager
def fault_proxy(upstream_port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream_port)
    try:
        yield proxy
    finally:
        proxy.close()
