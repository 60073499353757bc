# SPDX-License-Identifier: Apache-2.0
"""The Gemini SDK's HTTP client arguments: our pool, on httpx, on any event loop.

The Google GenAI SDK builds its async client from ``async_client_args`` once per SDK
client, and the Genkit plugin keeps one SDK client per event loop. But when ``aiohttp``
is importable — any other package may bring it — the SDK sends every async request
through aiohttp instead, unless those arguments name an httpx ``transport``. That would
drop our pool limits, keep-alive and connect timeout, and raise aiohttp's errors, which
are not the provider failures the call policy knows. So the arguments always carry a
transport: ``LoopLocalTransport``, which keeps one pooled httpx transport per event loop
(an httpx pool's connections belong to the loop that opened them) with our limits.

Imported only when the Gemini provider is selected (it imports ``httpx``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from genkit_endpoints.model.config import ProviderPoolConfig
from genkit_endpoints.model.per_loop import PerLoop

__all__ = ["LoopLocalTransport", "gemini_async_client_args"]


class LoopLocalTransport(httpx.AsyncBaseTransport):
    """An httpx transport that hands each request to the running loop's pooled transport,
    made with ``limits`` on the loop's first request."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._pools = PerLoop(lambda: httpx.AsyncHTTPTransport(limits=limits))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pools.get().handle_async_request(request)

    async def aclose(self) -> None:
        """Close the running loop's pool only; a later request on it opens a fresh one."""
        transport = self._pools.pop()
        if transport is not None:
            await transport.aclose()


def gemini_async_client_args(pool: ProviderPoolConfig) -> dict[str, Any]:
    """``HttpOptions.async_client_args``: the pooled transport and the connect timeout."""
    limits = httpx.Limits(
        max_connections=pool.max_connections,
        max_keepalive_connections=pool.keepalive_connections,
        keepalive_expiry=pool.keepalive_expiry,
    )
    return {
        "transport": LoopLocalTransport(limits),
        "event_hooks": {"request": [connect_timeout_hook(pool.connect_timeout)]},
    }


def connect_timeout_hook(seconds: float) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook that caps the time to connect at ``seconds``.

    The Gemini SDK sends its one timeout with every request, for every phase — a client
    default would be overridden — so the cap goes into the request's own timeouts (the
    ``timeout`` request extension), which is what the transport reads.
    """

    async def cap_connect_timeout(request: httpx.Request) -> None:
        timeouts = dict(request.extensions.get("timeout") or {})
        current = timeouts.get("connect")
        timeouts["connect"] = seconds if current is None else min(seconds, current)
        request.extensions["timeout"] = timeouts

    return cap_connect_timeout
