# SPDX-License-Identifier: Apache-2.0
"""The flow cache in process memory: TTL + LRU, for one process.

Per process: with several workers each holds its own entries. Bounded by ``max_entries``
(least recently used go first) and ``ttl``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from genkit_endpoints.core.errors import EndpointError
from genkit_endpoints.policies.cache.base import Lease

__all__ = ["MemoryStore"]

Clock = Callable[[], float]


class MemoryStore:
    """TTL + LRU by entry count, for one process. Expired entries go on access and in a
    sweep at most once per ``sweep_every`` seconds (amortised over writes)."""

    def __init__(self, ttl: float, max_entries: int, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.sweep_every = min(ttl, 60.0)
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        now = self._clock()
        self._entries[key] = (now + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if now - self._swept >= self.sweep_every:
            self.sweep()

    def sweep(self) -> int:
        """Drop every expired entry; returns how many went."""
        now = self._swept = self._clock()
        dead = [k for k, (expires, _) in self._entries.items() if expires <= now]
        for k in dead:
            del self._entries[k]
        return len(dead)

    async def claim(self, key: str) -> bytes | Lease:
        value = self.get(key)
        return Lease() if value is None else value

    async def settle(
        self, key: str, lease: Lease, value: bytes | None, failure: EndpointError | None
    ) -> None:
        if value is not None:
            self.put(key, value)

    async def aclose(self) -> None:
        self._entries.clear()
