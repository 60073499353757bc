# SPDX-License-Identifier: Apache-2.0
"""One value per running event loop: for HTTP pools, whose connections belong to a loop.

The provider SDKs are handed one client (or transport) object for the life of the
process, but a pooled connection can only be used on the loop that opened it, and
Genkit's developer mode runs actions on a loop of its own. ``PerLoop`` keeps one value
per loop, made on that loop's first use and forgotten with the loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerLoop"]

T = TypeVar("T")


class PerLoop(Generic[T]):
    """The running loop's value, made by ``make`` on the loop's first ``get``."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()  # loops in several threads may ask at once

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        with self._lock:
            value = self._by_loop.get(loop)
            if value is None:
                value = self._by_loop[loop] = self._make()
            return value

    def pop(self) -> T | None:
        """The running loop's value, forgotten (a later ``get`` makes a new one); None if
        it had none."""
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._by_loop.pop(loop, None)
