# SPDX-License-Identifier: Apache-2.0
"""The OpenAI SDK's HTTP client: one pool per provider, and correct on any event loop.

``AsyncOpenAI`` takes pool limits only as a ready ``http_client`` instance, while the
Genkit plugin builds one ``AsyncOpenAI`` per event loop from the same arguments — so
that one instance would serve every loop. An httpx client's pooled connections belong
to the loop that opened them: a call on a second loop (Genkit's developer mode runs
actions on a loop of its own) would pick one up and fail. ``LoopLocalHttpClient`` is
that instance: it builds requests itself and sends each through the pooled client of
the running loop, made on the loop's first call with the same arguments. One loop per
served process means one pool per provider for the life of the process.

Imported only when the OpenAI provider is selected (it imports ``openai``).
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

import openai

from genkit_endpoints.model.config import ProviderPoolConfig
from genkit_endpoints.model.per_loop import PerLoop

if TYPE_CHECKING:
    import httpx2

__all__ = ["LoopLocalHttpClient", "openai_http_client", "openai_timeout"]


def _http_library() -> ModuleType:
    """The HTTP library this ``openai`` speaks: httpx2 in recent releases, httpx before.

    Its ``Limits`` is the one the SDK's client class takes.
    """
    for name in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            module = importlib.import_module(name)
            if issubclass(openai.DefaultAsyncHttpxClient, module.AsyncClient):
                return module
    raise RuntimeError("openai.DefaultAsyncHttpxClient is neither an httpx2 nor an httpx client")


class LoopLocalHttpClient(openai.DefaultAsyncHttpxClient):
    """An ``http_client`` for ``AsyncOpenAI`` that keeps one pooled client per event loop.

    The instance itself never opens a connection: ``send`` — the one method every request
    of httpx's client goes through — hands the request to the running loop's client, built
    with this instance's arguments (limits, timeouts, proxies from the environment, TLS
    defaults: all the SDK's own). ``aclose`` closes the running loop's pool only; a later
    call on that loop opens a fresh one.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._clients = PerLoop(lambda: openai.DefaultAsyncHttpxClient(**kwargs))

    async def send(self, request: httpx2.Request, *args: Any, **kwargs: Any) -> httpx2.Response:
        return await self._clients.get().send(request, *args, **kwargs)

    async def aclose(self) -> None:
        client = self._clients.pop()
        if client is not None:
            await client.aclose()


def openai_timeout(read_s: float, pool: ProviderPoolConfig) -> openai.Timeout:
    """The SDK's timeout: ``read_s`` for every phase but connecting, which gets its own."""
    return openai.Timeout(read_s, connect=min(pool.connect_timeout, read_s))


def openai_http_client(pool: ProviderPoolConfig, timeout: openai.Timeout) -> LoopLocalHttpClient:
    """The ``http_client`` for ``AsyncOpenAI`` with the pool's limits and keep-alive."""
    limits = _http_library().Limits(
        max_connections=pool.max_connections,
        max_keepalive_connections=pool.keepalive_connections,
        keepalive_expiry=pool.keepalive_expiry,
    )
    return LoopLocalHttpClient(limits=limits, timeout=timeout)
