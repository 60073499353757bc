# SPDX-License-Identifier: Apache-2.0
"""An asyncio event loop on a virtual clock, the fake clock of asyncio code.

Code that waits with ``asyncio.sleep``, ``asyncio.timeout`` or ``loop.call_later`` reads
the time from its loop. On this loop the clock stands still while anything is ready to
run and, when every task waits for a timer, jumps straight to the earliest one. A test
then asserts exact virtual durations (a deadline of 200 ms took 0.2 s) in no real time,
and a busy machine cannot stretch them: the clock only moves when nothing else can.

Only for code that waits on nothing but its own timers: no sockets, no threads (a
resolver in a thread pool, ``asyncio.to_thread``). The loop cannot see that kind of work
coming back and would jump past a timer while the answer is still on its way, so such a
test uses the real loop.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready = super().select(0)
        loop = self.loop
        if ready or timeout == 0 or loop is None:
            return ready
        if timeout is None:  # no timer at all: only outside I/O can wake us
            return super().select(None)
        loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` starts at 0 and advances only to the next due timer (see module doc)."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run_virtual(main: Coroutine[Any, Any, T]) -> tuple[T, float]:
    """Run ``main`` on a fresh virtual-time loop: its result and the virtual seconds it took."""
    loop = VirtualTimeLoop()
    try:
        result = loop.run_until_complete(main)
        return result, loop.time()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def run_virtual_raising(
    main: Coroutine[Any, Any, object], exc: type[BaseException]
) -> tuple[BaseException, float]:
    """Like ``run_virtual`` for a coroutine expected to raise ``exc``: the error and the time."""

    async def catching() -> BaseException:
        try:
            await main
        except exc as caught:
            return caught
        raise AssertionError(f"{exc.__name__} was not raised")

    return run_virtual(catching())
