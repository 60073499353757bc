# SPDX-License-Identifier: Apache-2.0
"""What the flow run path needs from a response cache, and the client's way to bypass it.

The run path (``core.routes``) only keys requests, looks them up and settles the misses
it fills; how answers are stored, shared across processes or expired is a policy's
business. Spelling that need out here keeps core free of any policy import, and lets a
test or an app hand in any object with these methods.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from genkit_endpoints.core.errors import EndpointError

__all__ = ["CacheFill", "ResponseCache", "no_cache"]


class CacheFill(Protocol):
    """A miss this request is filling: exactly one of the three must follow."""

    async def complete(self, value: bytes) -> None: ...

    async def fail(self, error: EndpointError) -> None: ...

    def abandon(self) -> None: ...


class ResponseCache(Protocol):
    """Answers of cacheable routes by key, with concurrent identical misses shared."""

    def key(self, flow: str, version: str, payload: BaseModel, mode: str = "unary") -> str: ...

    async def begin(self, key: str, *, read: bool = True, flow: str = "") -> bytes | CacheFill:
        """The stored answer, or the fill this request owes; ``flow`` names the flow for
        the cache's metrics and the request record."""
        ...


def no_cache(cache_control: str | None) -> bool:
    """True when a ``Cache-Control`` value carries ``no-cache``: skip cached answers.

    The HTTP header and the gRPC metadata of the same name mean the same, so both
    transports parse it here.
    """
    if not cache_control:
        return False
    directives = (d.split("=", 1)[0].strip().lower() for d in cache_control.split(","))
    return "no-cache" in directives
