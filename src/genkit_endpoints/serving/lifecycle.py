# SPDX-License-Identifier: Apache-2.0
"""Drain coordination: what runs at the first SIGTERM/SIGINT, in every server.

Servers drain on their own (stop accepting, wait for in-flight work) and only then run
the ASGI lifespan shutdown — too late to flip readiness or gRPC health. ``Lifecycle``
chains itself in front of whatever signal handler the server installed, from inside the
serving process (so it also works in worker processes), and runs the drain callbacks
once, before handing the signal on.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

_log = structlog.get_logger(__name__)
DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Lifecycle:
    """Drain callbacks, run once at the first shutdown signal (or an explicit call)."""

    def __init__(self) -> None:
        self.draining = False
        self._callbacks: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}

    def on_drain(self, callback: Callable[[], None]) -> None:
        """Register a fast, synchronous callback (schedule async work from it)."""
        self._callbacks.append(callback)

    def start_draining(self) -> None:
        """Run the drain callbacks once; later calls do nothing."""
        if self.draining:
            return
        self.draining = True
        _log.info("shutdown_started")
        for callback in self._callbacks:
            try:
                callback()
            except Exception:  # a failing callback must not stop the others or the drain
                _log.exception("drain_callback_failed")

    def before_deadline(self, grace: float, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the running loop shortly before the drain's grace ends.

        Servers cut whatever still runs when the grace ends; this is the moment to end
        long work cleanly first (e.g. streams send their final error frame).
        """
        loop = asyncio.get_running_loop()
        lead = min(1.0, grace / 4)

        def arm() -> None:
            loop.call_later(max(0.0, grace - lead), callback)

        def schedule() -> None:
            # Drain callbacks run inside a signal handler: only the thread-safe call is safe.
            loop.call_soon_threadsafe(arm)

        self.on_drain(schedule)

    def install_signal_handlers(self) -> None:
        """Chain in front of the current SIGTERM/SIGINT handlers (main thread only).

        Call it after the server installed its own handlers (e.g. from the lifespan
        startup). The server's handler still runs, right after the drain callbacks.
        """
        for sig in DRAIN_SIGNALS:
            previous = signal.getsignal(sig)
            self._previous[sig] = previous
            signal.signal(sig, self._handle)

    def restore_signal_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler runs inside whatever request the main thread was serving;
        # an empty context keeps that request's id off the drain log.
        contextvars.Context().run(self.start_draining)
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)
