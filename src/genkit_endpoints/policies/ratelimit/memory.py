# SPDX-License-Identifier: Apache-2.0
"""Rate limits counted in process memory: exact for one process, per process with
several workers (N workers admit up to N times the rate)."""

from __future__ import annotations

from limits.aio.storage import MemoryStorage

from genkit_endpoints.policies.ratelimit.base import Decision, RateLimitConfig, decide, strategy

__all__ = ["MemoryLimits"]


class MemoryLimits:
    """A ``LimitStore`` in this process, over ``limits``' memory storage."""

    def __init__(self, cfg: RateLimitConfig) -> None:
        self.items = cfg.items
        self._strategy = strategy(cfg.strategy, MemoryStorage())

    async def hit(self, key: str) -> Decision:
        return await decide(self._strategy, self.items, key)

    async def aclose(self) -> None:
        return None
