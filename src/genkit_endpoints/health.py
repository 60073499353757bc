"""Liveness and readiness (SPEC §6.3): never calls a model, flips to 503 while draining."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

CheckFn = Callable[[], Awaitable[bool]]


class Readiness:
    """Named readiness checks plus the drain flag set at the first shutdown signal."""

    def __init__(self, check_timeout: float = 2.0) -> None:
        self._checks: dict[str, CheckFn] = {}
        self._timeout = check_timeout
        self.draining = False

    def start_draining(self) -> None:
        self.draining = True

    def add_check(self, name: str, check: CheckFn) -> None:
        self._checks[name] = check

    async def _run(self, check: CheckFn) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                return await check()
        except Exception:
            return False

    async def report(self) -> tuple[bool, dict[str, str]]:
        """(ready, {check: "ok" | "failing"}), checks run concurrently."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n]) for n in names))
        checks = {n: ("ok" if ok else "failing") for n, ok in zip(names, results, strict=True)}
        checks["shutdown"] = "draining" if self.draining else "ok"
        return all(results) and not self.draining, checks
